import base64
import os
import re
import shutil
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from m3l.readers.report import VectorStats, pca_2d, write_report
from m3l.store.scan import FolderScan
from tests.core.sample_outputs import random_vectors, write_features
from tests.testlib import DATA, run_script

WIDTH, HEIGHT = 1280, 1800
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def sample_output(minilm_output, tmp_path_factory):
    """The real MiniLM run on the bundled plots, plus one healthy and three broken models."""
    output = tmp_path_factory.mktemp("report") / "features"
    shutil.copytree(minilm_output, output)
    write_features(output, "clip-image", random_vectors("clip-image", ["1", "2", "3"]),
                   failed={"4": "cannot identify image file 'poster/4.jpg'"})
    write_features(output, "vgg", {i: np.full(4096, 0.25, np.float32) for i in "1234"})  # all equal
    rng = np.random.default_rng(3)
    centre = rng.standard_normal(768).astype(np.float32)
    write_features(output, "vit", {i: centre + 1e-5 * rng.standard_normal(768).astype(np.float32) for i in "1234"})
    nan_rows = rng.standard_normal((4, 512)).astype(np.float32)
    nan_rows[1, 7] = np.nan  # a table written by another tool: JSON files can never hold NaN
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(nan_rows.ravel()), 512)
    pq.write_table(pa.table({"movie_id": pa.array([1, 2, 3, 4], pa.int64()), "embedding": embedding}),
                   output / "video_embeddings_r2p1d.parquet")
    return output


@pytest.fixture(scope="module")
def report(sample_output):
    html_path = sample_output.parent / "report.html"
    result = run_script("report.py", "--output", sample_output, "--html", html_path,
                        "--plots", DATA / "plots.tsv", "--posters", DATA / "poster", "--trailers", DATA / "trailers.tsv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"report written to {html_path}"
    return html_path


def summary_row(page, model):
    return re.search(rf"<tr><td><a href='#[\w-]+'>{model}</a></td>.*?</tr>", page).group(0)


def test_summary_table(report):
    page = report.read_text()
    minilm = summary_row(page, "minilm")
    assert "<td class=num>384</td><td class=num>4</td><td class=num>4/4 (100.0%)</td>" in minilm
    assert "<span class=ok>ok</span>" in minilm and "hdf5" in minilm
    assert "<td class=num>1</td><td class=num>1</td><td class=num>1</td>" in minilm  # unit norms
    assert "3/4 (75.0%)" in summary_row(page, "clip-image")
    assert "all 4 vectors are identical" in summary_row(page, "vgg")
    assert "collapsed: vectors differ by" in summary_row(page, "vit")
    r2p1d = summary_row(page, "r2p1d")
    assert "NaN or Inf in 1 of 4 vectors" in r2p1d and "4/4" in r2p1d and "parquet" in r2p1d
    assert "catalogues text: " in page and "plots.tsv" in page


def test_missing_reasons_from_the_log(report):
    page = report.read_text()
    section = re.search(r"<section id='clip-image'>.*?</section>", page).group(0)
    assert ("<tr><td>cannot identify image file &#x27;poster/4.jpg&#x27;</td><td class=num>1</td>"
            "<td class=ids>4</td></tr>") in section
    assert "no missing ids" in re.search(r"<section id='minilm'>.*?</section>", page).group(0)


def test_self_contained_with_one_scatter_per_model(report):
    page = report.read_text()
    assert not re.search(r"""(src|href)=['"]?(https?:|//|file:)""", page)
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 5
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")


def test_page_renders_in_a_headless_browser(report, tmp_path):
    browser = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if browser is None:
        message = "no chromium on the PATH: install it (apt-get install chromium, as .ci/run does) to render the report"
        if os.environ.get("M3L_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    screenshot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={screenshot}", report.as_uri()],
                   check=True, capture_output=True, timeout=120)
    shutil.copy(screenshot, report.parent / "screenshot.png")  # left beside the report for a look
    with Image.open(screenshot) as image:
        assert image.size == (WIDTH, HEIGHT)
        pixels = np.asarray(image.convert("RGB"))
    not_white = (pixels < 240).any(axis=2)
    assert not_white.mean() > 0.03  # text, tables and plots drawn, not a blank page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # anti-aliased text and coloured scatters
    blue_points = (pixels[..., 2] > 150) & (pixels[..., 0] < 110)  # the healthy models' scatters
    assert blue_points.sum() > 50


def test_report_errors(tmp_path):
    result = run_script("report.py", "--output", tmp_path)
    assert result.returncode == 2 and result.stderr == f"error: no features under {tmp_path}\n"
    result = run_script("report.py", "--output", tmp_path / "absent")
    assert result.returncode == 2 and "output folder not found" in result.stderr


def test_vector_stats_flag_broken_models():
    rng = np.random.default_rng(0)
    healthy = rng.standard_normal((50, 16))
    assert VectorStats.of(healthy).problems() == []
    assert VectorStats.of(np.ones((5, 16))).problems() == ["all 5 vectors are identical"]
    collapsed = 1 + 1e-4 * healthy
    assert VectorStats.of(collapsed).problems()[0].startswith("collapsed")
    with_nan = healthy.copy()
    with_nan[3, 2] = np.nan
    with_nan[4] = 0
    assert VectorStats.of(with_nan).problems() == ["NaN or Inf in 1 of 50 vectors", "all zeros: 1 of 50 vectors"]


def test_pca_matches_an_exact_svd():
    rng = np.random.default_rng(1)
    scales = np.concatenate([[8.0, 4.0], np.linspace(1, 0.1, 62)])  # two leading axes stand out
    data = rng.standard_normal((300, 64)) * scales
    coords, shares = pca_2d(data)
    centred = data - data.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    exact = centred @ axes[:2].T
    assert np.allclose(np.abs(coords), np.abs(exact), atol=1e-6)  # the sign of an axis is arbitrary
    assert np.allclose(shares, singular[:2] ** 2 / np.sum(singular**2))
    assert np.array_equal(pca_2d(np.ones((3, 8)))[0], np.zeros((3, 2)))


def test_models_without_vectors_or_with_one(tmp_path):
    write_features(tmp_path, "mpnet", {}, skipped={"9": "empty or missing plot"})
    write_features(tmp_path, "slowfast", random_vectors("slowfast", ["1"]))
    page = write_report(tmp_path).read_text()
    mpnet = summary_row(page, "mpnet")
    assert "0/1 (0.0%)" in mpnet and "no vectors" in mpnet and "<td class=num colspan=3>–</td>" in mpnet
    assert "<span class=ok>ok</span>" in summary_row(page, "slowfast")
    assert "<td>empty or missing plot</td><td class=num>1</td><td class=ids>9</td>" in page


@pytest.mark.parametrize("link", ["dangling", "looping"])
def test_a_broken_json_link_is_left_out_not_an_error(tmp_path, link):
    write_features(tmp_path, "minilm", random_vectors("minilm", ["1", "2", "3"]), consolidated=link == "looping")
    (tmp_path / "minilm" / "9.json").symlink_to(tmp_path / "minilm" / ("9.json" if link == "looping" else "gone"))
    assert "3/3 (100.0%)" in summary_row(write_report(tmp_path).read_text(), "minilm")
    kind = "a symbolic link loop" if link == "looping" else "a dangling symbolic link"
    assert FolderScan(tmp_path / "minilm", 384).problems == {"9.json": f"entries that are not regular files ({kind}, "
                                                                       "never opened)"}


def test_zero_vectors_are_healthy_where_the_recipe_makes_them(tmp_path):
    vectors = random_vectors("vggish", ["1", "2", "3"])
    vectors["4"] = np.zeros(128, np.float32)  # a soundtrack without one complete VGGish example
    write_features(tmp_path, "vggish", vectors)
    write_features(tmp_path, "whisper", {**random_vectors("whisper", ["1", "2"]), "3": np.zeros(512, np.float32)})
    page = write_report(tmp_path).read_text()
    assert "<span class=ok>ok</span>" in summary_row(page, "vggish")
    assert "all zeros: 1 of 3 vectors" in summary_row(page, "whisper")


def test_html_in_a_missing_folder_is_created(tmp_path):
    write_features(tmp_path, "slowfast", random_vectors("slowfast", ["1"]))
    html_path = tmp_path / "reports" / "today" / "x.html"
    result = run_script("report.py", "--output", tmp_path, "--html", html_path)
    assert result.returncode == 0, result.stderr
    assert "<html" in html_path.read_text()
