"""Catalogue readers: ids, headers, duplicates and paths."""

from __future__ import annotations

import pytest

from m3l.catalog import image_extensions, id_problem, read_links, read_media, read_movielens_links, read_plots
from m3l.errors import UserError
from tests.testlib import run_script


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
    catalogue = read_media(tmp_path, image_extensions())
    assert [(i.id, i.source.rsplit("/", 1)[1]) for i in catalogue.items] == [("1", "1.jpeg"), ("2", "2.JPG")]
    reasons = dict(catalogue.rejected)
    assert "2.png ignored" in reasons["2"] and "invalid id" in reasons["bad id"]


def test_ids_keeps_only_the_selected_ids_rejections_and_notes(tmp_path):
    """Rows outside --ids were not asked for: they are not logged as skipped on every run."""
    for name in ("1.png", "2.png", "2.JPG", "3.txt", "4.txt", "bad id.jpg"):
        (tmp_path / name).write_bytes(b"")
    catalogue = read_media(tmp_path, image_extensions()).only({"1", "3"})
    assert [item.id for item in catalogue.items] == ["1"]
    assert catalogue.rejected == [] and [label for label, _ in catalogue.warnings] == ["3.txt"]


def test_missing_input_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_media(tmp_path / "nope.tsv", ())
    with pytest.raises(UserError, match="not found"):
        read_plots(tmp_path / "nope.tsv")


def _plots(tmp_path, text):
    (tmp_path / "p.tsv").write_text("movie_id\tplot\n" + text)
    catalogue = read_plots(tmp_path / "p.tsv")
    return [(i.id, i.source) for i in catalogue.items], dict(catalogue.rejected), dict(catalogue.warnings)


def test_an_unterminated_quote_swallows_no_row_and_is_logged(tmp_path):
    items, rejected, warnings = _plots(tmp_path, '1\t"Rosebud is the last word\n2\tSecond plot\n3\tThird plot\n')
    assert items == [("1", '"Rosebud is the last word'), ("2", "Second plot"), ("3", "Third plot")]
    assert "quotes on line 2 do not pair up" in warnings["1"] and not rejected


def test_quotes_that_would_swallow_rows_are_read_one_row_per_line(tmp_path):
    items, _, warnings = _plots(tmp_path, '1\t"Rosebud\n2\tSecond plot"\n3\tThird plot\n')
    assert [movie_id for movie_id, _ in items] == ["1", "2", "3"]
    assert "do not pair up" in warnings["1"]


def test_a_valid_quoted_field_may_span_lines_and_says_so(tmp_path):
    items, _, warnings = _plots(tmp_path, '1\t"He said ""Rosebud""\nand died."\n2\tSecond plot\n')
    assert items == [("1", 'He said "Rosebud"\nand died.'), ("2", "Second plot")]
    assert warnings == {"1": "a quoted field spans lines 2-3: read as one row"}


def test_quoted_fields_on_one_line_are_unquoted_silently(tmp_path):
    items, _, warnings = _plots(tmp_path, '1\t"A ""quoted"" plot"\n2\tHe said "hi" twice\n')
    assert items == [("1", 'A "quoted" plot'), ("2", 'He said "hi" twice')] and not warnings


def test_ids_that_would_collide_in_tables_or_on_case_insensitive_disks_are_refused(tmp_path):
    items, rejected, _ = _plots(tmp_path, "12\ta\n012\tb\n0012\tc\nAb\td\nab\te\n12\tf\n")
    assert items == [("12", "a"), ("Ab", "d")]
    assert "collides with 12" in rejected["012"] and "collides with 12" in rejected["0012"]
    assert "collides with Ab" in rejected["ab"]
    for name in ("7.jpg", "007.png", "X.png", "x.jpg"):
        (tmp_path / name).write_bytes(b"")
    catalogue = read_media(tmp_path, image_extensions())
    assert [i.id for i in catalogue.items] == ["007", "X"]
    assert {label for label, _ in catalogue.rejected} == {"7", "x"}


def test_a_tab_on_a_later_line_of_a_quoted_plot_makes_no_phantom_row(tmp_path):
    items, rejected, warnings = _plots(tmp_path, '1\t"First line\nsecond line\twith a tab."\n2\tSecond plot\n')
    assert items == [("1", "First line\nsecond line\twith a tab."), ("2", "Second plot")] and not rejected
    assert warnings == {"1": "a quoted field spans lines 2-3: read as one row"}


@pytest.mark.parametrize("script, flag, header, link, download", [
    ("extract_images.py", "--posters", "movie_id\tposter_link", "https://image.example.org/t/p/original/a.jpg",
     "download_posters.py"),
    ("extract_audio.py", "--trailers", "movie_id\ttrailer_link", "http://www.youtube.com/watch?v=abc",
     "download_trailers.py"),
])
def test_a_link_file_given_to_an_extractor_stops_it_naming_the_download_script(tmp_path, script, flag, header, link,
                                                                               download):
    links = tmp_path / "links.tsv"
    links.write_text(f"{header}\n1\t{link}\n2\t{link}\n")
    result = run_script(script, flag, links, "--output", tmp_path / "out", "--models-dir", tmp_path / "models",
                        timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ") and download in result.stderr and str(links) in result.stderr
    assert not (tmp_path / "out").exists()


def test_link_files_read_as_m3l_wrote_them_and_reject_what_is_no_web_link(tmp_path):
    (tmp_path / "links.tsv").write_text("movie_id\tposter_link\n1\thttps://img.example.org/t/p/original/a.jpg\n"
                                        "2\tfile:///etc/passwd\n3\t/local/b.jpg\n4\n../5\thttp://h/x.jpg\n"
                                        "6\thttp:///nohost.jpg\n7\tHTTP://img.example.org/b.png\n"
                                        "8\thttp://[oops/x.jpg\n9\thttp://[oops]/x.jpg\n")
    catalogue = read_links(tmp_path / "links.tsv")
    assert [(i.id, i.source) for i in catalogue.items] == [("1", "https://img.example.org/t/p/original/a.jpg"),
                                                          ("7", "HTTP://img.example.org/b.png")]
    reasons = dict(catalogue.rejected)
    assert reasons["2"] == "not an http(s) URL: file:///etc/passwd" and reasons["3"].startswith("not an http(s)")
    assert reasons["4"] == "row without a link" and "invalid id" in reasons["../5"] and "6" in reasons
    assert reasons["8"] == "not an http(s) URL: http://[oops/x.jpg" and "9" in reasons  # malformed: no crash


def test_movielens_links_give_each_movie_its_tmdb_id(tmp_path):
    (tmp_path / "links.csv").write_text("movieId,imdbId,tmdbId\n1,0114709,862\n2,0113497,8844.0\n3,0000003,\n"
                                        "4,0000004,tt12\n")
    catalogue = read_movielens_links(tmp_path / "links.csv")
    assert [(i.id, i.source) for i in catalogue.items] == [("1", "862"), ("2", "8844")]
    assert dict(catalogue.rejected) == {"3": "no TMDB id in links.csv", "4": "TMDB id is not a number: tt12"}
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating\n1,1,4.0\n")
    with pytest.raises(UserError, match="not a MovieLens links.csv"):
        read_movielens_links(tmp_path / "ratings.csv")


def test_files_in_dev_shm_are_regular_files_and_the_rest_of_the_kernels_file_systems_are_not(tmp_path):
    import tempfile
    from pathlib import Path

    from m3l.catalog import REGULAR, path_kind

    with tempfile.NamedTemporaryFile(dir="/dev/shm", suffix=".jpg") as staged:  # media staged in memory
        assert path_kind(Path(staged.name)) == REGULAR
        (tmp_path / "link.jpg").symlink_to(staged.name)
        assert path_kind(tmp_path / "link.jpg") == REGULAR
    assert path_kind(Path("/proc/self/status")).startswith("in the kernel's virtual file systems")
