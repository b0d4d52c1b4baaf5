"""The extractors the guarantee tests run, each in its own venv, and helpers to run and inspect them.

Adding an extractor to every kill, interrupt and bad-input test is one row of
EXTRACTORS: its script, cheap models to run, and the function of its test folder that
puts those models in a store (run inside the extractor's venv), and optionally one
writing cheaper media than the bundled samples.
Checks here read the outputs with json/pyarrow/h5py directly, never through m3l.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.testlib import DATA, REPO, SRC

DIMS = {"minilm": 384, "clip-image": 512, "vit": 768, "audio_vggish": 128, "audio_whisper": 512, "mvit": 768,
        "r2p1d": 512, "slowfast": 2304}
OFFLINE = {"M3L_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "2"}


@dataclass(frozen=True)
class Extractor:
    modality: str  # also its venv, .venvs/<modality>
    script: str
    models: str  # --models of the test runs: the cheapest ones
    folders: tuple[str, ...]  # their output folders
    store_builders: tuple[str, ...]  # module:function of its test folder adding those models to a store
    items: int  # catalogue size of the kill and concurrency runs: enough for a run of several seconds
    batch_size: int
    media_builder: str | None = None  # module:function writing its test media into a folder; else the bundled ones

    def __str__(self) -> str:
        return self.modality

    @property
    def python(self) -> Path:
        return REPO / ".venvs" / self.modality / "bin" / "python"

    @property
    def input_flag(self) -> str:
        return {"text": "--plots", "image": "--posters"}.get(self.modality, "--trailers")


EXTRACTORS = [
    Extractor("text", "extract_text.py", "minilm", ("minilm",),
              ("tests.stores:add_minilm",), items=60, batch_size=4),
    Extractor("image", "extract_images.py", "clip-image,vit", ("clip-image", "vit"),
              ("tests.stores:add_clip", "tests.image.stores:add_vit"), items=24, batch_size=4),
    Extractor("audio", "extract_audio.py", "vggish", ("audio_vggish",),
              ("tests.audio.stores:add_vggish",), items=12, batch_size=2),
    Extractor("video", "extract_video.py", "r2p1d", ("r2p1d",),
              ("tests.video.stores:add_r2p1d",), items=4, batch_size=2,
              media_builder="tests.video.media:one_clip_trailers"),
]
TEXT = EXTRACTORS[0]


def _build(extractor: Extractor, root: Path, builders: tuple[str, ...]) -> Path:
    """Run its test folder's `builders` on `root` in the extractor's venv, whose packages they need."""
    result = subprocess.run([str(extractor.python), "-m", "tests.build_store", str(root), *builders],
                            cwd=REPO, capture_output=True, text=True, env={**os.environ, **OFFLINE}, timeout=600)
    assert result.returncode == 0, result.stderr
    return root


def build_store(extractor: Extractor, root: Path) -> Path:
    """Fill `root` with the extractor's test models."""
    return _build(extractor, root, extractor.store_builders)


def make_catalogue(extractor: Extractor, folder: Path, count: int | None = None, seed: int = 0) -> Path:
    """`count` good items (its test media or the bundled samples, repeated), ids 1..count, in the extractor's
    input format."""
    count = count or extractor.items
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    if extractor.modality == "text":
        words = (DATA / "plots.tsv").read_text(encoding="utf-8").split()
        path = folder / "plots.tsv"
        path.write_text("movie_id\tplot\n" + "".join(
            f"{i}\t{' '.join(rng.choices(words, k=rng.randint(8, 80)))}\n" for i in range(1, count + 1)))
        return path
    if extractor.modality == "image":
        posters = sorted((DATA / "poster").iterdir())
        for i in range(1, count + 1):
            source = posters[i % len(posters)]
            (folder / f"{i}{source.suffix}").write_bytes(source.read_bytes())
        return folder
    media = _build(extractor, folder / "trailers", (extractor.media_builder,)) if extractor.media_builder else \
        DATA / "trailers"
    trailers = sorted(media.glob("*.mp4"))
    path = folder / "trailers.tsv"
    path.write_text("movie_id\ttrailer_path\n" + "".join(f"{i}\t{trailers[i % len(trailers)]}\n"
                                                         for i in range(1, count + 1)))
    return path


def arguments(extractor: Extractor, catalogue: Path, store: Path, output: Path, *extra: object) -> list[str]:
    return [extractor.input_flag, str(catalogue), "--models", extractor.models, "--models-dir", str(store),
            "--output", str(output), "--device", "cpu", "--batch-size", str(extractor.batch_size), *map(str, extra)]


def in_private_mounts(shell: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `shell` as root of a new user and mount namespace: mounts made there vanish with it."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed to mount a real tmpfs or read-only folder")
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"user and mount namespaces are not allowed here: {probe.stderr.decode().strip()}")
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", shell], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout,
                          env={**os.environ, **OFFLINE})


def start(extractor: Extractor, args: list[str]) -> subprocess.Popen:
    """The script in its own process group, as a job scheduler or a terminal runs it."""
    return subprocess.Popen([str(extractor.python), str(SRC / extractor.script), *args], cwd=REPO,
                            env={**os.environ, **OFFLINE}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def run(extractor: Extractor, args: list[str]) -> tuple[int, str, str]:
    return finish(start(extractor, args))


def signal_group(process: subprocess.Popen, signum: int) -> None:
    """Signal the script and its decoding workers, like Ctrl-C in a terminal or a scheduler's kill."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def json_files(output: Path, folders: tuple[str, ...]) -> list[Path]:
    return sorted(path for folder in folders for path in (output / folder).glob("*.json"))


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, timeout: float = 300) -> bool:
    """Poll until `condition` holds; False when the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return condition()
        time.sleep(0.01)
    raise TimeoutError("the run made no progress")


def read_json(path: Path, dim: int) -> np.ndarray:
    """The vector of a per-movie file, asserting it is exactly {"<its id>": [dim finite numbers]}."""
    data = json.loads(path.read_bytes())
    assert list(data) == [path.stem], path
    vector = np.asarray(data[path.stem], dtype=np.float64)
    assert vector.shape == (dim,) and np.isfinite(vector).all(), path
    return vector


def read_tables(output: Path, folder: str, table: str) -> dict[str, dict[str, np.ndarray]]:
    """Both consolidated tables of a model (those present), as {source: {id: vector}}; they must parse."""
    tables = {}
    parquet, h5 = output / f"{table}.parquet", output / f"{table}.h5"
    if parquet.exists():
        data = pq.read_table(parquet)
        tables["parquet"] = {str(i): np.asarray(v) for i, v in zip(data["movie_id"].to_pylist(),
                                                                    data["embedding"].to_pylist())}
    if h5.exists():
        with h5py.File(h5, "r") as handle:
            ids = [i.decode() if isinstance(i, bytes) else str(i) for i in handle["movie_ids"][...]]
            tables["hdf5"] = dict(zip(ids, np.asarray(handle["embeddings"][...])))
    return tables


def table_name(extractor: Extractor, folder: str) -> str:
    name = {"audio_vggish": "vggish", "audio_whisper": "whisper", "audio_ast": "ast"}.get(folder, folder)
    return f"{extractor.modality}_embeddings_{name}"


def snapshot(output: Path, extractor: Extractor) -> dict[str, dict[str, np.ndarray]]:
    """Every vector under `output`: JSON folders and consolidated tables, all asserted complete."""
    found = {}
    for folder in extractor.folders:
        found[folder] = {path.stem: read_json(path, DIMS[folder]) for path in json_files(output, (folder,))}
        for source, vectors in read_tables(output, folder, table_name(extractor, folder)).items():
            found[f"{folder}.{source}"] = vectors
    return found


def temporary_files(output: Path) -> list[Path]:
    return sorted(path for path in output.rglob("*") if path.name.endswith(".tmp"))


def assert_same_vectors(found: dict, expected: dict, atol: float = 1e-5) -> None:
    """Same sources, same ids, same values (batching may move floats by ~1e-6, docs/recipes.md)."""
    assert found.keys() == expected.keys()
    for source in expected:
        assert sorted(found[source]) == sorted(expected[source]), source
        for movie_id, vector in expected[source].items():
            np.testing.assert_allclose(found[source][movie_id], vector, atol=atol, err_msg=f"{source} {movie_id}")


def summaries(stdout: str) -> dict[str, dict[str, int]]:
    """The summary line of each model: `<folder>: N done, N already done, N failed, N skipped in S s`."""
    found = {}
    for line in stdout.splitlines():
        folder, _, rest = line.partition(": ")
        if " done, " in rest and " already done, " in rest:
            counts = [part.strip().split(" ", 1) for part in rest.split(" in ")[0].split(",")]
            found[folder] = {label: int(number) for number, label in counts}
    return found
