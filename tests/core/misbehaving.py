"""A test-only text encoder that misbehaves on purpose, on plots that ask for it.

- a plot containing POISON makes `embed` raise (an item the model cannot take);
- a plot containing `CRASH_ONCE <marker path>` kills the worker process the first time
  it is seen (the marker file remembers), as a lost node or an OOM kill would;
- a plot containing CRASH_ALWAYS kills the worker process every time;
- a plot containing OOM runs out of GPU memory (torch.cuda.OutOfMemoryError) in any batch of more
  than one plot, as a batch too big for the GPU would;
- a plot containing STICKY fails as a corrupted CUDA context does (the RuntimeError torch raises
  after an illegal memory access).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from m3l.models.text import SentenceTransformerEncoder


class MisbehavingEncoder(SentenceTransformerEncoder):
    batch_sizes: list[int] = []  # of the forward passes that ran, across instances (tests read it in-process)

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
            if "OOM" in plot and len(plots) > 1:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            if "STICKY" in plot:
                raise RuntimeError("CUDA error: an illegal memory access was encountered\nCUDA kernel errors "
                                   "might be asynchronously reported at some other API call")
        self.batch_sizes.append(len(plots))
        return super().embed(plots)
