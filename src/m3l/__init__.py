"""m3l: movie plots, posters and trailers → feature vectors with twelve pretrained encoders.

The readers below load on first use, so that importing a light module (`m3l.errors`) does
not import the feature store and its libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from m3l.readers.features import as_dataframe, list_models, load_features, provenance

__all__ = ["as_dataframe", "list_models", "load_features", "provenance"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name in __all__:
        return getattr(importlib.import_module("m3l.readers.features"), name)
    raise AttributeError(f"module 'm3l' has no attribute {name!r}")
