"""Trailer embeddings with SlowFast R50 (2304-d) (see docs/video.md)."""

import sys

from m3l.cli import main

if __name__ == "__main__":
    sys.exit(main("video", default_models=["slowfast"], description=__doc__))
