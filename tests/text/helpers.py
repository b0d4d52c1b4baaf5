"""Made-up plots for the text tests, and the plots TSV they are read from."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = ("a detective returns to her home town where the river has dried and every neighbour keeps a secret "
         "about the night the mill burned while a young pianist learns that the orchestra is bankrupt").split()


def make_plots(count: int, seed: int = 0) -> dict[str, str]:
    """Plots of very different lengths, one longer than any model's maximum sequence length."""
    rng = random.Random(seed)
    plots = {str(i): " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 120))) for i in range(1, count + 1)}
    plots["7"] = " ".join(rng.choice(WORDS) for _ in range(700))
    return plots


def write_tsv(path: Path, plots: dict[str, str]) -> Path:
    path.write_text("movie_id\tplot\n" + "".join(f"{i}\t{p}\n" for i, p in plots.items()), encoding="utf-8")
    return path
