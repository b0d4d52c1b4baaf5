"""Plot embeddings with minilm, mpnet and clip-text (see docs/text.md)."""

import sys

from m3l.cli import main

if __name__ == "__main__":
    sys.exit(main("text", description=__doc__))
