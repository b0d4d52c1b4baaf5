"""Trailer soundtrack embeddings with whisper, ast and vggish, each trailer decoded once (see docs/audio.md)."""

import sys

from m3l.cli import main

if __name__ == "__main__":
    sys.exit(main("audio", description=__doc__))
