"""Does this pipeline reproduce the published M3L minilm vectors? Extract your plots, compare with the published files.

M3L's plot text is `<TMDB title>: <TMDB overview>` (that form reproduces the published minilm
vectors to about 1e-7; the overview alone does not). Give the plots either as a plots TSV
already in that form (`--plots`, movie_id<TAB>plot) or as TMDB fields (`--tmdb`, a TSV
movie_id<TAB>title<TAB>overview with a header row), for movies whose published vector you
have. Neither the published files nor TMDB's text ship with this project: bring both.

    .venvs/text/bin/python bench/check_published.py --published M3L_10M_20M/features_json_format \\
        --tmdb my_movies.tsv --models-dir models

Prints compare.py's table for minilm over the movies given; exit code 0 when every one is
within tolerance, 1 when one is not, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import sys
import tempfile
from pathlib import Path

import common  # noqa: F401 - puts src/ on the path
from m3l.cli import main as extract
from m3l.errors import UserError, exit_code
from m3l.readers.compare import compare, table, verdict


def parse_args() -> argparse.Namespace:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--published", type=Path, required=True,
                         help="the published features_json_format/, its 1_text_feat/, or 1_text_feat/minilm/")
    plots = options.add_mutually_exclusive_group(required=True)
    plots.add_argument("--plots", type=Path, help="plots TSV, movie_id<TAB>plot, each plot '<title>: <overview>'")
    plots.add_argument("--tmdb", type=Path, help="TSV with a header row: movie_id, TMDB title, TMDB overview")
    options.add_argument("--models-dir", type=Path, default=Path("models"), help="model store (default: models)")
    options.add_argument("--device", default="cpu", help="device of the extraction (default: cpu)")
    return options.parse_args()


def m3l_plots(tmdb: Path, target: Path) -> Path:
    """A plots TSV of `<title>: <overview>` from TMDB's fields."""
    try:
        rows = list(csv.reader(io.StringIO(tmdb.read_text(encoding="utf-8-sig"), newline=""), delimiter="\t"))
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {tmdb}: {error}") from None
    bad = [number for number, row in enumerate(rows[1:], 2) if len(row) != 3]
    if len(rows) < 2 or bad:
        raise UserError(f"{tmdb}: expected a header row and movie_id<TAB>title<TAB>overview rows"
                        + (f" (line {bad[0]} has another shape)" if bad else ""))
    with open(target, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["movie_id", "plot"])
        writer.writerows([movie_id, f"{title}: {overview}"] for movie_id, title, overview in rows[1:])
    return target


def check(args: argparse.Namespace, work: Path) -> bool:
    plots = args.plots or m3l_plots(args.tmdb, work / "plots.tsv")
    output = work / "features"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = extract("text", ["--plots", str(plots), "--models", "minilm", "--models-dir", str(args.models_dir),
                                "--output", str(output), "--device", args.device, "--no-consolidate"])
    if code != 0:
        raise UserError(f"the extraction failed (exit code {code}); see the messages above")
    print(printed.getvalue().strip())
    results = compare(output / "minilm", args.published, ["minilm"])
    for result in results:  # the published folder holds every movie: only those extracted matter here
        result.only_b = []
    ok, summary = verdict(results)
    print("\n".join([*table(results), summary]))
    return ok


def main() -> int:
    args = parse_args()
    ok = [True]

    def run() -> None:
        with tempfile.TemporaryDirectory() as work:
            ok[0] = check(args, Path(work))

    return exit_code(run) or (0 if ok[0] else 1)


if __name__ == "__main__":
    sys.exit(main())
