"""Trailer embeddings with slowfast, mvit and r2p1d from one decode per trailer (see docs/video.md)."""

import sys

from m3l.cli import main

if __name__ == "__main__":
    sys.exit(main("video", description=__doc__))
