"""Catalogue readers: ids, headers, duplicates and paths."""

from __future__ import annotations

import pytest

from m3l.catalog import IMAGE_EXTENSIONS, id_problem, read_media, read_plots
from m3l.errors import UserError


@pytest.mark.parametrize("movie_id", ["1", "193609", "tt0114709", "a_b-c"])
def test_valid_ids(movie_id):
    assert id_problem(movie_id) is None


@pytest.mark.parametrize("movie_id", ["", "../x", "/abs", "a/b", "a\\b", "x\x00y", "1 2", "é", "x" * 65, "CON", "lpt1"])
def test_ids_that_could_escape_or_break_a_path_are_rejected(movie_id):
    assert id_problem(movie_id) is not None


def test_plots_header_may_list_columns_in_any_order(tmp_path):
    (tmp_path / "p.tsv").write_text("plot\tmovie_id\nA plot.\t7\n")
    catalogue = read_plots(tmp_path / "p.tsv")
    assert [(i.id, i.source) for i in catalogue.items] == [("7", "A plot.")]


def test_plots_without_header_is_a_user_error(tmp_path):
    (tmp_path / "p.tsv").write_text("1\tA plot.\n")
    with pytest.raises(UserError, match="header"):
        read_plots(tmp_path / "p.tsv")


def test_media_map_header_is_optional_and_paths_resolve_against_its_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    for text in ("movie_id\tpath\n1\tsub/a.mp4\n2\t/abs/b.mp4\n", "1\tsub/a.mp4\n2\t/abs/b.mp4\n"):
        (tmp_path / "map.tsv").write_text(text)
        catalogue = read_media(tmp_path / "map.tsv", ())
        assert [(i.id, i.source) for i in catalogue.items] == [("1", str(tmp_path / "sub" / "a.mp4")),
                                                                ("2", "/abs/b.mp4")]


def test_media_map_logs_rows_without_path_duplicates_and_bad_ids(tmp_path):
    (tmp_path / "map.tsv").write_text("1\ta.mp4\n1\tb.mp4\n2\n../3\tc.mp4\n")
    catalogue = read_media(tmp_path / "map.tsv", ())
    assert [i.id for i in catalogue.items] == ["1"]
    reasons = dict(catalogue.rejected)
    assert reasons["1"].startswith("duplicate id") and reasons["2"] == "row without a file path"
    assert "invalid id" in reasons["../3"]


def test_media_folder_picks_one_file_per_id_deterministically(tmp_path):
    for name in ("2.png", "2.JPG", "1.jpeg", "notes.txt", "bad id.jpg"):
        (tmp_path / name).write_bytes(b"")
    catalogue = read_media(tmp_path, IMAGE_EXTENSIONS)
    assert [(i.id, i.source.rsplit("/", 1)[1]) for i in catalogue.items] == [("1", "1.jpeg"), ("2", "2.JPG")]
    reasons = dict(catalogue.rejected)
    assert "2.png ignored" in reasons["2"] and "invalid id" in reasons["bad id"]


def test_missing_input_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_media(tmp_path / "nope.tsv", ())
    with pytest.raises(UserError, match="not found"):
        read_plots(tmp_path / "nope.tsv")
