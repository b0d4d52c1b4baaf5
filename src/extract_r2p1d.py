"""Trailer embeddings with R(2+1)D-34 IG-65M (512-d) (see docs/video.md)."""

import sys

from m3l.cli import main

if __name__ == "__main__":
    sys.exit(main("video", default_models=["r2p1d"], description=__doc__))
