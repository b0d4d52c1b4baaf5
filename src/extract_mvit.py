"""Trailer embeddings with MViT-B 32x3 (768-d) (see docs/video.md)."""

import sys

from m3l.cli import main

if __name__ == "__main__":
    sys.exit(main("video", default_models=["mvit"], description=__doc__))
