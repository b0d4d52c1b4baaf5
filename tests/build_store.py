"""Fill a model store with test models, or a folder with test media, in the venv that runs this module:

    .venvs/<modality>/bin/python -m tests.build_store ROOT MODULE:FUNCTION [MODULE:FUNCTION ...]

Each FUNCTION (a test folder's builder, such as tests.stores:add_minilm or tests.video.media:one_clip_trailers)
is called with ROOT. The guarantee tests run it in each extractor's own venv, whose packages the builders need.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(root: str, *builders: str) -> None:
    for builder in builders:
        module, function = builder.split(":")
        getattr(importlib.import_module(module), function)(Path(root))


if __name__ == "__main__":
    main(*sys.argv[1:])
