"""How fast compare.py answers "do my vectors equal the published ones?" at M3L size.

Writes two published-layout look-alike folders of --items vectors (pretty JSON, float32
values as float64 text, as features_json_format/ ships them), the second one nudged by
float noise, then times (median of --repeats) the command `compare.py A B` against one plain
standard-library pass that only parses every file of both folders (`json.load`).

    .venvs/text/bin/python bench/bench_compare.py [--items 20000] [--dim 768]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import REPO, median_seconds, parser
from tests.published import write_published


def stdlib_pass(folders: list[Path]) -> None:
    for folder in folders:
        for name in os.listdir(folder):
            with open(folder / name, encoding="utf-8") as handle:
                json.load(handle)


def compare_command(a: Path, b: Path) -> None:
    result = subprocess.run([sys.executable, str(REPO / "src" / "compare.py"), str(a), str(b)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"compare.py failed ({result.returncode}): {result.stdout}{result.stderr}")


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--items", type=int, default=20000)
    options.add_argument("--dim", type=int, default=768, choices=(384, 512, 768), help="of minilm, clip-text or mpnet")
    args = options.parse_args()
    model = {384: "minilm", 512: "clip-text", 768: "mpnet"}[args.dim]
    rng = np.random.default_rng(0)
    vectors = {str(k): rng.standard_normal(args.dim).astype(np.float32) for k in range(1, args.items + 1)}
    with tempfile.TemporaryDirectory() as folder:
        a = write_published(Path(folder) / "a", model, vectors)
        b = write_published(Path(folder) / "b", model, {k: v * np.float32(1 + 1e-6) for k, v in vectors.items()})
        timings = median_seconds({"stdlib": lambda _: stdlib_pass([a, b]), "compare": lambda _: compare_command(a, b)},
                                 args.repeats)
    print(f"{args.items} x {args.dim} ({model}) in each of two published-layout folders, median of {args.repeats}:")
    print(f"  json.load of every file of both folders: {timings['stdlib']:7.2f} s")
    print(f"  compare.py A B (the whole command):       {timings['compare']:7.2f} s  "
          f"({timings['compare'] / timings['stdlib']:.2f}x the stdlib pass)")


if __name__ == "__main__":
    main()
