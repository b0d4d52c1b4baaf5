"""What depends on the device: loader count, TF32, GPU memory and failures, the Ray engine's GPUs, and a
small /dev/shm. Without a GPU, CUDA's failures come from a misbehaving encoder (tests/core/misbehaving.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from m3l.cli import main
from m3l.engines import ENGINES, MAX_AUTO_WORKERS
from m3l.engines.pipeline import load_encoders
from m3l.modalities import MODALITIES
from m3l.models import lookup
from m3l.models.base import Encoder
from tests.core.extractors import EXTRACTORS, arguments, assert_same_vectors, in_private_mounts, make_catalogue, snapshot
from tests.outputs import read_vectors


def resolve_workers(workers, modality, device, engine="local"):
    return ENGINES[engine].workers(workers, modality, device)


@pytest.mark.parametrize("cores, expected", [(1, 1), (4, 3), (16, MAX_AUTO_WORKERS)])
def test_auto_workers_on_a_gpu_are_one_per_core_but_one_capped(monkeypatch, cores, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert resolve_workers("auto", MODALITIES["video"], "cuda:1") == expected
    assert resolve_workers("auto", MODALITIES["image"], "cuda") == expected


def test_auto_workers_keep_the_modality_default_on_a_cpu_for_text_and_with_ray(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert resolve_workers("auto", MODALITIES["video"], "cpu") == MODALITIES["video"].workers == 2
    assert resolve_workers("auto", MODALITIES["text"], "cuda") == 0  # tokenising stays in-process
    assert resolve_workers("auto", MODALITIES["audio"], "cuda", engine="ray") == 2  # ray: inference workers
    assert resolve_workers(5, MODALITIES["video"], "cuda") == 5


class Weightless(Encoder):
    def load(self) -> None:
        pass

    def embed(self, samples: list) -> np.ndarray:
        return np.zeros((len(samples), 1))


@pytest.mark.parametrize("precision, tf32", [("auto", False), ("fp32", False), ("tf32", True), ("fp16", True)])
def test_tf32_is_on_only_for_the_fast_precisions(precision, tf32):
    """Set where encoders load: under auto (the recipes) and fp32, convolutions and matmuls run in full
    fp32 on Ampere and newer GPUs, whose cuDNN default is TF32."""
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = not tf32
    load_encoders([Weightless(lookup("minilm"), [], "cpu", precision)])
    assert torch.backends.cudnn.allow_tf32 is tf32
    assert torch.backends.cuda.matmul.allow_tf32 is tf32



@pytest.mark.parametrize("model, device, precision, arithmetic", [
    ("minilm", "cpu", "tf32", "fp32"), ("minilm", "cuda", "auto", "fp32"), ("minilm", "cuda", "tf32", "tf32"),
    ("minilm", "cuda", "fp16", "fp16"), ("whisper", "cuda", "auto", "fp16"), ("whisper", "cpu", "auto", "fp32")])
def test_provenance_records_the_arithmetic_the_vectors_were_computed_in(model, device, precision, arithmetic):
    """TF32 changes the numbers only where it exists (CUDA), so a tf32 run on a CPU may share a folder
    with an fp32 one; on a GPU it may not."""
    assert Weightless(lookup(model), [], device, precision).arithmetic == arithmetic

def write_plots(path: Path, plots: list[str]) -> Path:
    path.write_text("movie_id\tplot\n" + "".join(f"{i}\t{plot}\n" for i, plot in enumerate(plots, 1)))
    return path


def extract(tmp_path: Path, store: Path, model: str, plots: list[str], *args: str) -> int:
    return main("text", ["--plots", str(write_plots(tmp_path / "plots.tsv", plots)), "--models", model,
                         "--models-dir", str(store), "--output", str(tmp_path / "out"), "--device", "cpu", *args])


def test_a_batch_out_of_gpu_memory_is_halved_until_it_fits(tmp_path, minilm_store, misbehaving, capsys):
    from tests.core.misbehaving import MisbehavingEncoder

    MisbehavingEncoder.batch_sizes.clear()
    plots = ["a cat on a boat", "the OOM plot", "two baristas", "a feud in the harbour town"]
    assert extract(tmp_path, minilm_store, misbehaving, plots, "--batch-size", "4") == 0
    assert MisbehavingEncoder.batch_sizes == [2, 1, 1]  # longest plots first: 4 → 2 + (OOM, baristas) → 2 + 1 + 1
    assert "misbehaving: 4 done, 0 already done, 0 failed" in capsys.readouterr().out
    assert (tmp_path / "out" / "log_misbehaving.txt").read_text() == ""
    (tmp_path / "plain").mkdir()
    assert extract(tmp_path / "plain", minilm_store, "minilm", plots) == 0
    np.testing.assert_allclose(read_vectors(tmp_path / "out" / "misbehaving")["2"],
                               read_vectors(tmp_path / "plain" / "out" / "minilm")["2"], atol=1e-6)


def test_a_sticky_cuda_error_stops_the_run_with_one_line(tmp_path, minilm_store, misbehaving, capsys):
    plots = ["a cat on a boat", "two baristas", "a STICKY plot", "a feud in the harbour town"]
    assert extract(tmp_path, minilm_store, misbehaving, plots, "--batch-size", "2") == 2
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert "the GPU failed" in errors[0] and "illegal memory access" in errors[0]
    assert "misbehaving: 2 done, 0 already done, 0 failed" in out  # the summary, as after any stop
    assert sorted(read_vectors(tmp_path / "out" / "misbehaving")) == ["1", "4"]  # longest first: (4, 1), then (3, 2)
    assert (tmp_path / "out" / "log_misbehaving.txt").read_text() == ""  # 2 and 3 are not failed: rerun them


@pytest.mark.parametrize("args, message", [
    (["--device", "cuda", "--gpus-per-worker", "0"], "--device cuda with --gpus-per-worker 0"),
    (["--device", "cpu", "--gpus-per-worker", "1"], "--device cpu with --gpus-per-worker 1"),
    (["--device", "cuda:1"], "Ray gives each worker its GPUs"),
])
def test_ray_engine_refuses_devices_its_workers_cannot_honour(tmp_path, minilm_store, capsys, args, message):
    assert extract(tmp_path, minilm_store, "minilm", ["a cat"], "--engine", "ray", *args) == 2
    assert message in capsys.readouterr().err


def test_ray_engine_asks_the_cluster_not_this_machine_for_a_gpu(tmp_path, minilm_store, ray_cluster, capsys,
                                                             monkeypatch):
    """The driver needs no GPU for --device cuda: the workers do, so a cluster without one is refused."""
    import ray

    if ray.cluster_resources().get("GPU"):
        pytest.skip("the local Ray instance has a GPU: there is no refusal to see")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a driver without CUDA
    assert extract(tmp_path, minilm_store, "minilm", ["a cat"], "--engine", "ray", "--device", "cuda") == 2
    err = capsys.readouterr().err
    assert "no CUDA device is available on this machine" not in err
    assert "the Ray cluster has 0 GPUs, and each inference worker needs 1" in err


# The room check reads only a loader's prefetch and shared_bytes: plots, posters and soundtracks share the
# defaults (posters stand for them), trailers have their own.
SHM_LOADERS = [extractor for extractor in EXTRACTORS if extractor.modality in ("image", "video")]


@pytest.mark.parametrize("extractor", SHM_LOADERS, ids=str)
def test_a_small_dev_shm_gives_the_same_vectors(tmp_path, extractor, extractor_store):
    """16 MB of /dev/shm (Docker's default is 64): the loaders step aside with one line, nothing hangs."""
    catalogue = make_catalogue(extractor, tmp_path / "input", count=1)
    command = [str(extractor.python), str(Path("src") / extractor.script)]
    inline = [*command, *arguments(extractor, catalogue, extractor_store(extractor), tmp_path / "inline"),
              "--workers", "0"]
    small = [*command, *arguments(extractor, catalogue, extractor_store(extractor), tmp_path / "small"),
             "--workers", "2"]
    quoted = [" ".join(f"'{part}'" for part in run) for run in (inline, small)]
    result = in_private_mounts(f"{quoted[0]} && mount -t tmpfs -o size=16m tmpfs /dev/shm && {quoted[1]}")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "/dev/shm has" in line]
    assert len(notes) == 1 and "decoding in this process instead" in notes[0], result.stderr
    assert_same_vectors(snapshot(tmp_path / "small", extractor), snapshot(tmp_path / "inline", extractor))
