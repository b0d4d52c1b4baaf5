"""The local runner: batching across items, clip means, per-item failure isolation."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from m3l.catalog import Item
from m3l import engines
from m3l.engines.local import KILLED
from m3l.engines.pipeline import Batcher, feed, load_encoders, prepare
from m3l.models import ModelInfo
from m3l.models.base import Encoder
from m3l.store.writer import FeatureStore
from tests.outputs import read_vectors
from tests.testlib import REPO, SRC

INFO = ModelInfo("toy", "toy", "text", 3, (), "tests.core.test_runner:ToyEncoder")


class ToyEncoder(Encoder):
    """Each sample "a:b" becomes [a, b, batch size]; the sample "boom" makes a forward pass fail."""

    def __init__(self):
        super().__init__(INFO, [])
        self.batch_sizes = []

    def preprocess(self, media: str) -> list[str]:
        if media == "bad-media":
            raise ValueError("cannot decode this one")
        return media.split("|") if media else []

    def load(self) -> None:
        self.loaded = True

    def embed(self, samples: list[str]) -> np.ndarray:
        self.batch_sizes.append(len(samples))
        if "boom" in samples:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
        return np.array([[*map(float, s.split(":")), len(samples)] for s in samples])


def run_toy(tmp_path, sources: dict[str, str], batch_size: int, workers: int = 0):
    encoder, store = ToyEncoder(), FeatureStore(tmp_path, INFO)
    items = [Item(movie_id, source) for movie_id, source in sources.items()]
    engines.run(engines.ENGINES["local"], items, lambda item: item.source, [encoder], {"toy": store}, batch_size,
                workers)
    return encoder, store


def test_samples_of_many_items_share_batches_and_an_item_gets_the_mean_of_its_own(tmp_path):
    encoder, store = run_toy(tmp_path, {"1": "1:2|3:4", "2": "5:6", "3": "7:8|9:10|11:12"}, batch_size=4)
    assert encoder.batch_sizes == [4, 2]
    got = read_vectors(tmp_path / "toy")
    np.testing.assert_array_equal(got["1"], [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(got["2"], [5.0, 6.0, 4.0])
    np.testing.assert_array_equal(got["3"], np.float32([9.0, 10.0, (4 + 2 + 2) / 3]))
    assert (store.summary.done, store.summary.failed) == (3, 0)


def test_a_failing_sample_fails_only_its_item(tmp_path):
    encoder, store = run_toy(tmp_path, {"1": "1:1", "2": "2:2|boom", "3": "3:3", "4": "bad-media", "5": ""},
                             batch_size=8)
    assert sorted(read_vectors(tmp_path / "toy")) == ["1", "3"]
    log = (tmp_path / "log_toy.txt").read_text().splitlines()
    reasons = {line.split(" ", 4)[2]: line.split(" ", 4)[3:] for line in log}
    assert reasons == {"2": ["failed", "RuntimeError: mat1 and mat2 shapes cannot be multiplied"],
                       "4": ["failed", "cannot decode this one"], "5": ["failed", "no usable input"]}
    assert (store.summary.done, store.summary.failed) == (2, 3)


def test_worker_processes_give_the_same_result_as_inline_decoding(tmp_path):
    sources = {str(i): f"{i}:{i + 1}|{i + 2}:{i}" for i in range(20)}
    run_toy(tmp_path / "inline", sources, batch_size=6, workers=0)
    run_toy(tmp_path / "workers", sources, batch_size=6, workers=2)
    inline, workers = read_vectors(tmp_path / "inline" / "toy"), read_vectors(tmp_path / "workers" / "toy")
    assert sorted(inline) == sorted(workers) == sorted(sources)
    for movie_id, vector in inline.items():
        np.testing.assert_array_equal(workers[movie_id], vector, err_msg=movie_id)


def _killed_on_oom(item: Item) -> str:
    """The loader of a worker the kernel's OOM killer picks while it decodes the item "oom"."""
    if item.source == "oom":
        os.kill(os.getpid(), signal.SIGKILL)
    return item.source


def test_an_item_whose_loader_worker_is_killed_fails_alone_and_the_run_goes_on(tmp_path):
    encoder, store = ToyEncoder(), FeatureStore(tmp_path, INFO)
    sources = {str(i): f"{i}:{i}" for i in range(8)} | {"oom": "oom"} | {str(i): f"{i}:{i}" for i in range(8, 12)}
    items = [Item(movie_id, source) for movie_id, source in sources.items()]
    engines.run(engines.ENGINES["local"], items, _killed_on_oom, [encoder], {"toy": store}, batch_size=3, workers=2)
    assert sorted(read_vectors(tmp_path / "toy")) == sorted(set(sources) - {"oom"})
    log = (tmp_path / "log_toy.txt").read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in log] == [f"oom failed {KILLED}"]
    assert (store.summary.done, store.summary.failed) == (12, 1)


def test_done_items_are_not_decoded_again(tmp_path):
    run_toy(tmp_path, {"1": "1:1"}, batch_size=2)
    encoder, store = run_toy(tmp_path, {"1": "1:1", "2": "2:2"}, batch_size=2)
    assert encoder.batch_sizes == [1]
    assert (store.summary.done, store.summary.already_done) == (1, 1)


ORPHANED_WORKERS = """
import os, signal, sys, time
from pathlib import Path
from m3l.catalog import Item
from m3l.engines.local import PreparedItems, prepared_stream

ready = Path(sys.argv[1])

def hang(item):
    (ready / str(os.getpid())).touch()  # past the worker's start-up
    time.sleep(600)

stream = prepared_stream(PreparedItems([Item(str(i), "") for i in range(4)], hang, [[]] * 4), 2, 1)
print(Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text(), flush=True)  # the two workers
while len(list(ready.iterdir())) < 2:  # both workers are in `hang`, however slowly they started
    time.sleep(0.01)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_loader_workers_die_with_a_killed_main_process(tmp_path):
    result = subprocess.run([sys.executable, "-c", ORPHANED_WORKERS, str(tmp_path)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True, text=True, timeout=120)
    workers = [int(pid) for pid in result.stdout.split()]
    assert len(workers) == 2, result.stderr
    deadline = time.monotonic() + 30
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, workers))


class InlineEngine(engines.Engine):
    """A third engine, as a user would add one: every item prepared and embedded in this process, in order."""

    name, about = "inline", "this process only"

    def execute(self, plan, recorder, loader, encoders, batch_size, workers, args):
        batchers = {encoder.info.folder: Batcher(encoder, batch_size, recorder) for encoder in encoders}
        load_encoders(encoders)
        for item, wanted in zip(plan.todo, plan.wanted):
            prepared, warnings = prepare(item, loader, wanted)
            recorder.warn(item.id, prepared, warnings)
            feed(batchers, item.id, prepared)
        for batcher in batchers.values():
            batcher.flush()


def test_a_registered_engine_gets_its_option_and_runs_the_plan(tmp_path, monkeypatch):
    monkeypatch.setitem(engines.ENGINES, "inline", InlineEngine())
    parser = argparse.ArgumentParser()
    engines.add_arguments(parser)
    args = parser.parse_args(["--engine", "inline"])
    encoder, store = ToyEncoder(), FeatureStore(tmp_path, INFO)
    store.write("1", np.array([1.0, 1.0, 9.0]))  # done before: not in the plan
    items = [Item("1", "1:1"), Item("2", "2:2"), Item("3", "3:3"), Item("boom", "boom")]
    engine = engines.select(args)
    engines.run(engine, items, lambda item: item.source, [encoder], {"toy": store}, 2, 0, args=args)
    vectors = {movie_id: vector.tolist() for movie_id, vector in read_vectors(tmp_path / "toy").items()}
    assert vectors == {"1": [1.0, 1.0, 9.0], "2": [2.0, 2.0, 2.0], "3": [3.0, 3.0, 2.0]}
    assert "boom failed" in (tmp_path / "log_toy.txt").read_text()
