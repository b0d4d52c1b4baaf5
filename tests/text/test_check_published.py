"""bench/check_published.py on a published-layout look-alike: M3L's minilm vectors are the recipe run on
`<title>: <overview>`; made-up movies stand in for TMDB's (whose text does not ship with the project)."""

from __future__ import annotations

from tests.published import TOP, write_published
from tests.testlib import BENCH, run_offline

MOVIES = {"1": ("The Mill", "A pianist returns to her home town the night the mill burns."),
          "2": ("River", "A detective finds that every neighbour keeps a secret about the dried river."),
          "3": ("Orchestra", "A young engineer learns the orchestra is bankrupt.")}


def write_tmdb(path):
    path.write_text("movie_id\ttitle\toverview\n"
                    + "".join(f"{i}\t{title}\t{overview}\n" for i, (title, overview) in MOVIES.items()))
    return path


def check(tmp_path, text_store, *args):
    return run_offline(BENCH / "check_published.py", ["--tmdb", write_tmdb(tmp_path / "tmdb.tsv"),
                                                      "--models-dir", text_store, *args])


def test_our_minilm_reproduces_vectors_made_from_title_colon_overview(tmp_path, text_store, encode_one_at_a_time):
    published = {i: encode_one_at_a_time("minilm", f"{title}: {overview}") for i, (title, overview) in MOVIES.items()}
    write_published(tmp_path / TOP, "minilm", {**published, "99": published["1"]})  # a movie not checked
    result = check(tmp_path, text_store, "--published", tmp_path / TOP / "1_text_feat")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "minilm: 3 done" in result.stdout and result.stdout.splitlines()[-1].startswith("compare: OK")
    assert "only in B" not in result.stdout

    overview_only = {i: encode_one_at_a_time("minilm", overview) for i, (_, overview) in MOVIES.items()}
    write_published(tmp_path / "other" / TOP, "minilm", overview_only)
    result = check(tmp_path, text_store, "--published", tmp_path / "other" / TOP / "1_text_feat" / "minilm")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "beyond tolerance: minilm (3 ids)" in result.stdout
