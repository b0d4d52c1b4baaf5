"""The feature store at catalogue scale: finished folders of N vectors, every step that reads them.

    .venvs/text/bin/python bench/bench_store.py [--sizes 20000,200000,1000000] [--dims 384,768]
        [--root DIR] [--repeats 3]

For each size and dimension (384: minilm, 768: mpnet) the benchmark writes a finished
folder through the real feature store (files/s of the first and the last 10% of the
writes; an extract_text.py run on an empty catalogue first records the folder's
provenance, as the run that made it would), a plots catalogue and a model store, then
times in child processes (peak RSS from wait4):

  floor          one plain pass with the standard library: read bytes + json.loads per file
  startup        extract_text.py on an empty catalogue and output (imports, model store check):
                 the fixed part of every rerun below
  rerun, no idx  extract_text.py that finds everything done, start to exit, on a folder
                 never consolidated (resume scan + full consolidation)
  rerun          the same with the index of the last consolidation in place
  consolidate    consolidate.py --full (every file read, tables rewritten)
  incremental    consolidate.py after 1% new files
  verify         verify.py (every file read and checked, tables compared)
  load           load_features (auto: the up-to-date HDF5 table)

Ratios are against the floor. Medians of --repeats for folders up to 20,000 x 768
values; one run above that. Each folder is deleted once measured. `--sizes 2000`
runs in seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from common import REPO, parser

from m3l.models import MODELS
from m3l.store.writer import FeatureStore

MODEL_OF_DIM = {384: "minilm", 768: "mpnet"}
STEPS_DIR = Path(__file__).resolve().parent / "store_steps"


def timed(command: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (GiB) of a child process; its output is discarded unless it fails."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # verify exits 1 when it finds problems; none are expected here
        sys.exit(f"{' '.join(command)} failed ({code}):\n{output.decode(errors='replace')[-2000:]}")
    return seconds, usage.ru_maxrss / 2**20


def median(command: list[str], repeats: int) -> tuple[float, float]:
    runs = [timed(command) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def write_folder(output: Path, model: str, ids: range) -> tuple[float, float]:
    """Vectors for `ids`; files/s of the first and the last 10%, written by the feature store.

    The middle 80% are written plainly (same JSON text, no temporary file and rename):
    only to make the folder sooner.
    """
    store = FeatureStore(output, MODELS[model])
    vectors = np.random.default_rng(ids.start).standard_normal((1024, MODELS[model].dim)).astype(np.float32)
    tenth = max(1, len(ids) // 10)
    rates = []
    for part in (ids[:tenth], ids[tenth:len(ids) - tenth], ids[len(ids) - tenth:]):
        start = time.perf_counter()
        for movie_id in part:
            vector = vectors[movie_id % 1024] + np.float32(movie_id % 7)
            if len(rates) == 1:
                (store.folder / f"{movie_id}.json").write_bytes(orjson.dumps({str(movie_id): vector.tolist()}))
            else:
                store.write(str(movie_id), vector)
        rates.append(len(part) / (time.perf_counter() - start))
    return rates[0], rates[2]


def model_store(root: Path, model: str) -> Path:
    """The test suite's store of the model; built in a child, so that this process stays small
    (a child inherits its parent's peak RSS across exec)."""
    store = root / "models"
    if not (store / MODELS[model].files[0].path).exists():
        subprocess.run([sys.executable, "-m", "tests.build_store", str(store), f"tests.stores:add_{model}"],
                       cwd=REPO, check=True)
    return store


def measure(root: Path, count: int, dim: int, repeats: int) -> dict[str, object]:
    model = MODEL_OF_DIM[dim]
    info = MODELS[model]
    python = sys.executable
    work = root / f"{model}-{count}"
    output = work / "out"
    work.mkdir(parents=True)
    plots = work / "plots.tsv"
    plots.write_text("movie_id\tplot\n" + "".join(f"{i}\tPlot {i}.\n" for i in range(1, count + 1)))
    empty = work / "empty.tsv"
    empty.write_text("movie_id\tplot\n")
    extract = [python, str(REPO / "src/extract_text.py"), "--plots", str(plots), "--output", str(output),
               "--models-dir", str(model_store(root, model)), "--models", model, "--device", "cpu"]
    # The run that made the folder, as far as the folder remembers it: its provenance record (the
    # vectors below then are this run's, not of unknown provenance), nothing consolidated.
    timed([*extract[:2], "--plots", str(empty), *extract[4:], "--no-consolidate"])
    first, last = write_folder(output, model, range(1, count + 1))
    folder = output / info.folder
    consolidate = [python, str(REPO / "src/consolidate.py"), "--output", str(output)]
    row = {"items": count, "dim": dim, "create first 10%": first, "create last 10%": last}
    row["floor"] = median([python, str(STEPS_DIR / "floor.py"), str(folder)], repeats)
    row["startup"] = median([*extract[:2], "--plots", str(empty), "--output", str(work / "empty"), *extract[6:]],
                            repeats)
    row["rerun, no idx"] = timed(extract)  # builds the tables and the index: one run only
    row["rerun"] = median(extract, repeats)
    row["consolidate"] = median([*consolidate, "--full"], repeats)
    write_folder(output, model, range(count + 1, count + 1 + max(1, count // 100)))
    row["incremental"] = timed(consolidate)
    row["verify"] = median([python, str(REPO / "src/verify.py"), "--output", str(output)], repeats)
    row["load"] = median([python, str(STEPS_DIR / "load.py"), str(output), model], repeats)
    shutil.rmtree(work)
    return row


STEPS = ("floor", "startup", "rerun, no idx", "rerun", "consolidate", "incremental", "verify", "load")


def print_table(rows: list[dict[str, object]], repeats: int) -> None:
    print(f"\nseconds: median of {repeats} up to 20,000 x 768 values, one run above")
    print(f"{'items':>9} {'dim':>4} {'step':<14} {'seconds':>9} {'x floor':>8} {'peak RSS':>9} {'float32 matrix':>15}")
    for row in rows:
        matrix = row["items"] * row["dim"] * 4 / 2**30
        floor = row["floor"][0]
        print(f"{row['items']:>9} {row['dim']:>4} {'create (files/s)':<14} first 10%: {row['create first 10%']:,.0f}, "
              f"last 10%: {row['create last 10%']:,.0f}")
        for step in STEPS:
            seconds, rss = row[step]
            print(f"{'':>9} {'':>4} {step:<14} {seconds:>9.2f} {seconds / floor:>8.2f} {rss:>7.2f} G "
                  f"{matrix:>13.2f} G")
        print(f"{'':>9} {'':>4} incremental / consolidate: {row['incremental'][0] / row['consolidate'][0]:.1%}")
    sys.stdout.flush()


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--sizes", default="20000,200000,1000000")
    options.add_argument("--dims", default="384,768")
    options.add_argument("--root", type=Path, default=None, help="where the folders go (default: a temporary folder)")
    args = options.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_store_", dir=args.root))
    print(f"folders under {root}; free: {shutil.disk_usage(root).free / 2**30:.0f} GiB", flush=True)
    rows = []
    try:
        for count in map(int, args.sizes.split(",")):
            for dim in map(int, args.dims.split(",")):
                repeats = args.repeats if count * dim <= 20000 * 768 else 1
                rows.append(measure(root, count, dim, repeats))
                print(json.dumps(rows[-1]), flush=True)
                print_table(rows[-1:], args.repeats)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_table(rows, args.repeats)


if __name__ == "__main__":
    main()
