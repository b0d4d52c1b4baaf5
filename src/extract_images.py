"""Poster embeddings with clip-image, vgg and vit (see docs/images.md)."""

import sys

from m3l.cli import main

if __name__ == "__main__":
    sys.exit(main("image", description=__doc__))
