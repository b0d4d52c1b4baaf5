"""Poster embeddings with the image models of the model table, m3l/models (see docs/images.md)."""

import sys

from m3l.cli import main

if __name__ == "__main__":
    sys.exit(main("image", description=__doc__))
