"""extract_text.py end to end: output format, resume, bad input, CLI errors."""

from __future__ import annotations

import os
import subprocess

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.outputs import read_vectors
from tests.testlib import DATA, REPO, run_script
from tests.text.helpers import make_plots, write_tsv


def test_default_run_writes_all_three_models_and_consolidates(tmp_path, text_store):
    result = run_script("extract_text.py", "--models-dir", text_store, "--output", tmp_path)
    assert result.returncode == 0, result.stderr
    ids = [line.split("\t")[0] for line in (DATA / "plots.tsv").read_text().splitlines()[1:]]
    for folder, dim in (("minilm", 384), ("mpnet", 768), ("clip-text", 512)):
        vectors = read_vectors(tmp_path / folder)
        assert sorted(vectors) == sorted(ids)
        table = pq.read_table(tmp_path / f"text_embeddings_{folder}.parquet")
        assert table.schema.field("movie_id").type == "int64"
        assert table.column("movie_id").to_pylist() == sorted(int(i) for i in ids)
        matrix = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
        np.testing.assert_array_equal(matrix, np.stack([vectors[str(i)] for i in sorted(map(int, ids))]))
        with h5py.File(tmp_path / f"text_embeddings_{folder}.h5") as h5:
            np.testing.assert_array_equal(h5["movie_ids"][:], sorted(int(i) for i in ids))
            assert h5["embeddings"].dtype == np.float32 and h5["embeddings"].shape == (len(ids), dim)
            np.testing.assert_array_equal(h5["embeddings"][:], matrix)
        assert f"{folder}: {len(ids)} done, 0 already done, 0 failed, 0 skipped" in result.stdout


def test_rerun_skips_done_and_recomputes_corrupt_files(tmp_path, text_store):
    args = ("extract_text.py", "--models", "minilm", "--models-dir", text_store, "--output", tmp_path)
    assert run_script(*args).returncode == 0
    original = read_vectors(tmp_path / "minilm")
    (tmp_path / "minilm" / "2.json").write_text('{"2": [0.1, 0.2')  # truncated by a crash
    (tmp_path / "minilm" / "3.json").write_text('{"3": [0.1, 0.2]}')  # wrong length
    result = run_script(*args)
    assert result.returncode == 0, result.stderr
    assert "minilm: 2 done, 2 already done" in result.stdout
    log = (tmp_path / "log_minilm.txt").read_text()
    assert " minilm 2 recompute " in log and " minilm 3 recompute " in log
    rerun = read_vectors(tmp_path / "minilm")
    for movie_id, vector in original.items():
        np.testing.assert_allclose(rerun[movie_id], vector, atol=1e-6)


def test_messy_tsv_is_read_and_every_bad_row_logged(tmp_path, text_store, encode_one_at_a_time):
    raw = (
        "\ufeffmovie_id\tplot\r\n"
        "1\tA plain plot.\r\n"
        "\r\n"
        '2\t"A quoted plot\twith a tab\nand a newline."\r\n'
        "1\tA duplicate of movie one.\r\n"
        "3\t\r\n"
        "4\r\n"
        "../etc\tA plot with a path for an id.\r\n"
        "a/b\tAnother one.\r\n"
    ).encode("utf-8") + b"5\tCaf\xe9 au lait, not UTF-8.\r\n"
    (tmp_path / "plots.tsv").write_bytes(raw)
    result = run_script("extract_text.py", "--plots", tmp_path / "plots.tsv", "--models", "minilm",
                        "--models-dir", text_store, "--output", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    vectors = read_vectors(tmp_path / "out" / "minilm")
    assert sorted(vectors) == ["1", "2", "5"]
    np.testing.assert_allclose(vectors["1"], encode_one_at_a_time("minilm", "A plain plot."), atol=1e-5)
    np.testing.assert_allclose(vectors["2"], encode_one_at_a_time("minilm", "A quoted plot\twith a tab\nand a newline."),
                               atol=1e-5)
    np.testing.assert_allclose(vectors["5"], encode_one_at_a_time("minilm", "Caf\ufffd au lait, not UTF-8."), atol=1e-5)
    log = (tmp_path / "out" / "log_minilm.txt").read_text().splitlines()
    reasons = {line.split(" ", 4)[2]: (line.split(" ", 4)[3], line.split(" ", 4)[4]) for line in log}
    assert reasons["1"] == ("skipped", "duplicate id (first one kept)")
    assert reasons["3"][0] == "skipped" and "empty" in reasons["3"][1]
    assert reasons["4"][0] == "skipped" and "plot" in reasons["4"][1]
    assert reasons["../etc"][0] == "skipped" and "invalid id" in reasons["../etc"][1]
    assert reasons["a/b"][0] == "skipped" and "invalid id" in reasons["a/b"][1]
    assert reasons["5"][0] == "warning" and "UTF-8" in reasons["5"][1]
    assert not (tmp_path / "etc.json").exists() and not (tmp_path / "out" / "etc.json").exists()
    assert "minilm: 3 done, 0 already done, 0 failed, 5 skipped" in result.stdout


def test_limit_and_ids_select_items(tmp_path, text_store):
    plots = write_tsv(tmp_path / "plots.tsv", make_plots(10))
    (tmp_path / "ids.txt").write_text("3\n9\n\n42\n")
    common = ("--plots", plots, "--models", "minilm", "--models-dir", text_store)
    assert run_script("extract_text.py", *common, "--output", tmp_path / "a", "--limit", "4").returncode == 0
    assert len(list((tmp_path / "a" / "minilm").glob("*.json"))) == 4
    assert run_script("extract_text.py", *common, "--output", tmp_path / "b", "--ids", tmp_path / "ids.txt").returncode == 0
    assert sorted(p.stem for p in (tmp_path / "b" / "minilm").glob("*.json")) == ["3", "9"]


@pytest.mark.parametrize("args, message", [
    (("--plots", "no/such/plots.tsv"), "input file not found: no/such/plots.tsv"),
    (("--models", "minilm,bert"), "unknown text model 'bert'; choose from minilm, mpnet, clip-text"),
    (("--output", "/etc/hostname/out"), "output folder /etc/hostname/out is not writable"),
    (("--output", "README.md"), "--output README.md is a regular file, not a folder"),
    (("--output", "/dev/null"), "--output /dev/null is a character device, not a folder"),
    (("--device", "tpu"), "unknown device 'tpu'"),
])
def test_user_mistakes_exit_non_zero_with_one_line(tmp_path, text_store, args, message):
    result = run_script("extract_text.py", "--models-dir", text_store, "--output", tmp_path, *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_header_without_expected_columns_is_a_clear_error(tmp_path, text_store):
    (tmp_path / "plots.tsv").write_text("id\tsummary\n1\tA plot.\n")
    result = run_script("extract_text.py", "--plots", tmp_path / "plots.tsv", "--models-dir", text_store,
                        "--output", tmp_path / "out")
    assert result.returncode == 2
    assert "must be a header with columns 'movie_id' and 'plot' (found: id, summary)" in result.stderr


def test_model_missing_from_offline_store_names_path_and_fill_command(tmp_path):
    result = run_script("extract_text.py", "--models", "mpnet", "--models-dir", tmp_path / "empty",
                        "--output", tmp_path / "out")
    assert result.returncode == 2
    assert f"{tmp_path / 'empty' / 'sentence-transformers' / 'all-mpnet-base-v2'}" in result.stderr
    assert "python src/download_models.py --modality text" in result.stderr
    assert "Traceback" not in result.stderr


def test_consolidate_script_rebuilds_from_json(tmp_path, text_store):
    assert run_script("extract_text.py", "--models", "minilm", "--models-dir", text_store, "--output", tmp_path,
                      "--no-consolidate").returncode == 0
    assert not (tmp_path / "text_embeddings_minilm.parquet").exists()
    result = run_script("consolidate.py", "--output", tmp_path)
    assert result.returncode == 0, result.stderr
    table = pq.read_table(tmp_path / "text_embeddings_minilm.parquet")
    vectors = read_vectors(tmp_path / "minilm")
    for movie_id, embedding in zip(table.column("movie_id").to_pylist(), table.column("embedding").to_pylist()):
        np.testing.assert_array_equal(np.asarray(embedding, dtype=np.float32), vectors[str(movie_id)])


def test_make_demo_text_runs_on_a_given_store(tmp_path, text_store):
    result = subprocess.run(["make", "-s", "demo-text", f"MODELS_DIR={text_store}", f"OUTPUT={tmp_path}"],
                            cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "M3L_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    for folder in ("minilm", "mpnet", "clip-text"):
        assert len(list((tmp_path / folder).glob("*.json"))) == 4
        assert (tmp_path / f"text_embeddings_{folder}.parquet").is_file()


@pytest.mark.parametrize("where", ["encoder_class", "load"])
def test_ctrl_c_while_the_models_load_still_prints_the_summary(tmp_path, text_store, monkeypatch, capsys, where):
    """Ctrl-C lands where a run spends its first seconds: importing the model's libraries, loading weights."""
    from m3l import cli, models
    from m3l.models.text import SentenceTransformerEncoder

    def interrupt(*args):
        raise KeyboardInterrupt

    if where == "encoder_class":
        monkeypatch.setattr(models, "encoder_class", interrupt)
    else:
        monkeypatch.setattr(SentenceTransformerEncoder, "load", interrupt)
    plots = write_tsv(tmp_path / "plots.tsv", make_plots(3))
    code = cli.main("text", ["--plots", str(plots), "--models", "minilm", "--models-dir", str(text_store),
                             "--output", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 130 and "interrupted: every file written so far is complete" in err
    assert out.startswith("minilm: 0 done, 0 already done, 0 failed, 0 skipped in ")
