"""A test-only text encoder that misbehaves on purpose, on plots that ask for it.

- a plot containing POISON makes `embed` raise (an item the model cannot take);
- a plot containing `CRASH_ONCE <marker path>` kills the worker process the first time
  it is seen (the marker file remembers), as a lost node or an OOM kill would;
- a plot containing CRASH_ALWAYS kills the worker process every time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from m3l.models.text import SentenceTransformerEncoder


class MisbehavingEncoder(SentenceTransformerEncoder):
    def embed(self, plots: list[str]) -> np.ndarray:
        for plot in plots:
            if "CRASH_ALWAYS" in plot:
                os._exit(1)
            if "CRASH_ONCE" in plot:
                marker = Path(plot.split("CRASH_ONCE ", 1)[1].split()[0])
                if not marker.exists():
                    marker.touch()
                    os._exit(1)
            if "POISON" in plot:
                raise ValueError("poisoned plot")
        return super().embed(plots)
