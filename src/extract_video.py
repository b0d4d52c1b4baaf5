"""Trailer embeddings with the video models of the model table, m3l/models, from one decode per
trailer (see docs/video.md)."""

import sys

from m3l.cli import main

if __name__ == "__main__":
    sys.exit(main("video", description=__doc__))
