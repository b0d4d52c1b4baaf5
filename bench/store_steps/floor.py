"""bench_store.py's floor: one plain standard-library pass over a folder (read bytes + json.loads per file)."""

import json
import os
import sys

with os.scandir(sys.argv[1]) as entries:
    for entry in entries:
        if entry.name.endswith(".json"):
            with open(entry.path, "rb") as handle:
                json.loads(handle.read())
