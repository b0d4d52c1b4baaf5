"""What every benchmark shares: the import path, offline models, options, timing and the table of medians.

A benchmark imports this module before `m3l` or `tests`: importing it puts the package
(src/) and the repository (for the tests' random-weight model builders) on the path.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]
# Benchmarks build their own model stores: no model hub is ever asked.
for _name, _value in {"M3L_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_name, _value)


VOCABULARY = ("the a an her his their young old retired detective pianist engineer farmer town city river war "
              "family secret night summer winter letter ship island school orchestra mill storm journey must "
              "discovers returns learns hides fights loves betrays escapes finds loses before after during while "
              "when although because and but so then finally together alone forgotten haunted stolen").split()


def plots(count: int, words: tuple[int, int] = (40, 250), seed: int = 0) -> list[str]:
    """Made-up plots of `words` words (by default the length of MovieLens summaries)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(*words))) + "." for _ in range(count)]


def write_plots(path: Path, texts: list[str]) -> Path:
    """A plots TSV of `texts`, movie ids 1, 2, ..."""
    path.write_text("movie_id\tplot\n" + "".join(f"{i}\t{text}\n" for i, text in enumerate(texts, start=1)))
    return path


def parser(doc: str, repeats: int = 3, workers: int | None = None) -> argparse.ArgumentParser:
    """Options of a benchmark: its docstring as help, --repeats, and --workers where it has loader workers."""
    options = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--repeats", type=int, default=repeats, help="runs of each contender (median taken)")
    if workers is not None:
        options.add_argument("--workers", type=int, default=workers, help="loader worker processes")
    return options


def seconds(action: Callable[[], object]) -> float:
    """Wall seconds of one call of `action`."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median_seconds(contenders: dict[str, Callable[[int], object]], repeats: int,
                   before: Callable[[str], object] | None = None) -> dict[str, float]:
    """Median wall seconds of each contender, called with the repeat's number. The contenders take
    turns within each repeat, so that load from elsewhere on the machine hits them alike;
    `before(name)`, untimed, readies each run (empties its output folder)."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for repeat in range(repeats):
        for name, action in contenders.items():
            if before:
                before(name)
            times[name].append(seconds(lambda: action(repeat)))
    return {name: statistics.median(values) for name, values in times.items()}


def extract(modality: str, *args: object) -> None:
    """One extractor run in this process (as its script drives it), its summary not printed."""
    from m3l.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        code = main(modality, [str(arg) for arg in args])
    if code != 0:
        raise SystemExit(f"extract {modality} {' '.join(map(str, args))} failed with exit code {code}")


def print_table(medians: dict[str, float], items: int, unit: str) -> None:
    """One row per contender: its median seconds and `unit`s per second."""
    width = max(len(name) for name in medians)
    for name, value in medians.items():
        print(f"  {name:{width}}  {value:8.3f} s  {items / value:8.2f} {unit}/s")
