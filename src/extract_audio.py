"""Trailer soundtrack embeddings with the audio models of the model table, m3l/models, each trailer
decoded once (see docs/audio.md)."""

import sys

from m3l.cli import main

if __name__ == "__main__":
    sys.exit(main("audio", description=__doc__))
