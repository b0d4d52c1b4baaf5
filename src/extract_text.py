"""Plot embeddings with the text models of the model table, m3l/models (see docs/text.md)."""

import sys

from m3l.cli import main

if __name__ == "__main__":
    sys.exit(main("text", description=__doc__))
