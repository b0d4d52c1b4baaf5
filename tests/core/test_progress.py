"""Progress that reaches a log: a line per model at a steady interval where stderr is not a terminal,
tqdm bars where it is, and no library's own bar in a log."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import subprocess
import sys
import termios

from m3l.progress import Figures, ProgressLog, parse
from tests.testlib import SRC

TICKING = """
import sys, time
from m3l.progress import progress
with progress(0.05) as new_counter:
    tick = new_counter("toy", 10)
    tick(False)
    tick(True)
    time.sleep(float(sys.argv[1]))
"""


def ticking(seconds: float, **streams) -> subprocess.Popen:
    """A run of one model that records two items (one failed), then works on for `seconds`."""
    return subprocess.Popen([sys.executable, "-c", TICKING, str(seconds)], env={**os.environ, "PYTHONPATH": str(SRC)},
                            **streams)


def test_a_line_gives_done_total_both_rates_eta_and_failures_and_reads_back():
    now = [100.0]
    stream = io.StringIO()
    log = ProgressLog(60, stream, clock=lambda: now[0])
    tick = log.new_counter("minilm", 400)
    for failed in [False] * 99 + [True]:
        tick(failed)
    now[0] = 150.0
    log.report()
    for _ in range(20):
        tick()
    now[0] = 160.0
    log.report()
    first, second = stream.getvalue().splitlines()
    assert first == "progress: minilm 100/400, 2.00/s last 50 s, 2.00/s overall, ETA 0:02:30, 1 failed"
    assert second == "progress: minilm 120/400, 2.00/s last 10 s, 2.00/s overall, ETA 0:02:20, 1 failed"
    assert parse(second) == Figures("minilm", 120, 400, 2.0, 10.0, 2.0, 140, 1)
    assert parse("progress: st--BAAI--bge 0/9, 0.00/s last 60 s, 0.00/s overall, ETA unknown, 0 failed").eta is None
    assert parse(Figures("vgg", 1, 10 ** 7, 0.05, 60, 0.05, 2 * 86400 + 5, 0).line()).eta == 2 * 86400 + 5
    assert parse("minilm: 4 done, 0 already done, 0 failed, 0 skipped in 1.0 s") is None


def test_a_progress_line_reaches_a_non_terminal_stderr_while_the_run_goes_on():
    process = ticking(300, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stderr], [], [], 120)
        assert ready, "no progress line in 120 s"
        figures = parse(process.stderr.readline())
        assert process.poll() is None  # written while the run goes on, not at its end
    finally:
        process.kill()
        process.communicate()
    assert (figures.model, figures.done, figures.total, figures.failed) == ("toy", 2, 10, 1)


def test_a_terminal_gets_bars_and_no_progress_lines():
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a new pty is 0 columns wide
    process = ticking(0.5, stdout=child, stderr=child)
    os.close(child)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    assert process.wait(timeout=60) == 0
    assert b"toy:" in shown and b"2/10" in shown  # tqdm's bar
    assert b"progress:" not in shown
