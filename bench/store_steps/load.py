"""bench_store.py's load step: load_features of one model under an output root."""

import sys

from m3l.readers.features import load_features

ids, matrix = load_features(sys.argv[1], sys.argv[2])
assert matrix.shape[0] == len(ids)
