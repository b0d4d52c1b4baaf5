"""How far a run has got: tqdm bars on a terminal, a line per model at a steady interval in a log.

A job under nohup, sbatch or a container writes its stderr to a file, where bars turn
themselves off; there every model gets a line every `--progress-every` seconds, and a
last one when the run ends:

    progress: minilm 120/400, 2.10/s last 60 s, 1.85/s overall, ETA 0:02:13, 0 failed

extract_all.py reads these lines from its children (`parse`), so the format lives here only.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TextIO

Tick = Callable[[bool], None]  # one item recorded: failed or not
NewCounter = Callable[[str, int], Tick]  # (model, items to do) → its tick

_LINE = re.compile(r"progress: (?P<model>\S+) (?P<done>\d+)/(?P<total>\d+), (?P<recent>[\d.]+)/s last "
                   r"(?P<window>[\d.]+) s, (?P<overall>[\d.]+)/s overall, "
                   r"ETA (?P<eta>unknown|(?:\d+ days?, )?\d+:\d\d:\d\d), (?P<failed>\d+) failed$")


@dataclass
class Figures:
    """One model's progress as a line reports it."""

    model: str
    done: int
    total: int
    recent: float  # items/s over the last `window` seconds
    window: float
    overall: float  # items/s since the run started
    eta: float | None  # seconds left; None while nothing has been done
    failed: int

    def line(self) -> str:
        return (f"progress: {self.model} {self.done}/{self.total}, {self.recent:.2f}/s last {self.window:.3g} s, "
                f"{self.overall:.2f}/s overall, ETA {format_eta(self.eta)}, {self.failed} failed")


def combined(name: str, parts: Iterable[Figures]) -> Figures:
    """The figures of several models as one (a modality's line in extract_all.py): counts and rates add up,
    the ETA is the longest."""
    parts = list(parts)
    etas = [part.eta for part in parts]
    return Figures(name, sum(p.done for p in parts), sum(p.total for p in parts), sum(p.recent for p in parts),
                   max(p.window for p in parts), sum(p.overall for p in parts),
                   None if None in etas else max(etas), sum(p.failed for p in parts))


def format_eta(seconds: float | None) -> str:
    return "unknown" if seconds is None else str(timedelta(seconds=round(seconds)))


def parse(line: str) -> Figures | None:
    """The figures of a progress line; None for any other line."""
    match = _LINE.search(line.rstrip())
    if match is None:
        return None
    eta = match["eta"]
    if eta == "unknown":
        seconds = None
    else:
        days, _, clock = eta.rpartition(", ")
        hours, minutes, secs = (int(part) for part in clock.split(":"))
        seconds = int(days.split()[0]) * 86400 if days else 0
        seconds += hours * 3600 + minutes * 60 + secs
    return Figures(match["model"], int(match["done"]), int(match["total"]), float(match["recent"]),
                   float(match["window"]), float(match["overall"]), seconds, int(match["failed"]))


@dataclass
class _Counter:
    model: str
    total: int
    started: float
    done: int = 0
    failed: int = 0
    last_done: int = 0
    last_time: float = field(default=0.0)

    def figures(self, now: float) -> Figures:
        window = now - self.last_time
        recent = (self.done - self.last_done) / max(window, 1e-9)
        overall = self.done / max(now - self.started, 1e-9)
        rate = recent or overall
        eta = (self.total - self.done) / rate if rate else (0.0 if self.done >= self.total else None)
        self.last_done, self.last_time = self.done, now
        return Figures(self.model, self.done, self.total, recent, window, overall, eta, self.failed)


class ProgressLog:
    """Writes every model's line to `stream` every `every` seconds from a thread, and once more at the end."""

    def __init__(self, every: float, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.stream, self.clock = every, stream, clock
        self.counters: list[_Counter] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def new_counter(self, model: str, total: int) -> Tick:
        now = self.clock()
        counter = _Counter(model, total, now, last_time=now)
        with self.lock:
            self.counters.append(counter)

        def tick(failed: bool = False) -> None:
            with self.lock:
                counter.done += 1
                counter.failed += failed

        return tick

    def _loop(self) -> None:
        while not self.stopped.wait(self.every):
            self.report()

    def report(self) -> None:
        with self.lock:
            now = self.clock()
            lines = [counter.figures(now).line() for counter in self.counters]
        if lines:
            print("\n".join(lines), file=self.stream, flush=True)

    def __enter__(self) -> ProgressLog:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()
        self.report()


@contextmanager
def progress(every: float, stream: TextIO | None = None) -> Iterator[NewCounter]:
    """Counters for a run's models: tqdm bars where `stream` (stderr) is a terminal, else a ProgressLog."""
    stream = stream or sys.stderr
    if not stream.isatty():
        with ProgressLog(every, stream) as log:
            yield log.new_counter
        return
    from tqdm import tqdm

    bars = []

    def new_bar(model: str, total: int) -> Tick:
        bar = tqdm(total=total, desc=model, unit="item", position=len(bars), dynamic_ncols=True, file=stream)
        bars.append(bar)
        return lambda failed=False: bar.update(1)

    try:
        yield new_bar
    finally:
        for bar in bars:
            bar.close()


def keep_library_bars_out(stream: TextIO | None = None) -> None:
    """Libraries' own bars (transformers' `Loading weights: 100%|...|`, downloads) stay out of a log: they
    write carriage returns into it. Set before huggingface_hub is imported; Ray's workers inherit it."""
    if not (stream or sys.stderr).isatty():
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
