"""Torch helpers every modality's encoders share: precision, quiet loading, ImageNet normalisation.

Imported by the encoder modules only (they need torch); the model table never imports this.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from m3l.models.base import Encoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def half_precision(encoder: Encoder) -> AbstractContextManager:
    """float16 autocast when the encoder runs in half precision (`Encoder.half`); a no-op otherwise."""
    return torch.autocast(device_type=encoder.device.split(":")[0], dtype=torch.float16, enabled=encoder.half)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Loading without the report of the published checkpoints' unused heads, progress bars, or the
    AST extractor's notice that some of its 128 Kaldi mel filters are empty at 16 kHz (they are, by design)."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
            yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        transformers.logging.enable_progress_bar()
