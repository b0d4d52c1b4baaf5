"""The feature store at scale: one scan, the index of the last consolidation, incremental and full
consolidation, bounded memory; and folders holding what no JSON file should be."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

import m3l.store.scan
import m3l.store.tables.base
from m3l.models import MODELS
from m3l.readers.features import load_features
from m3l.store.consolidate import consolidate
from m3l.store.codec import BEYOND_FLOAT32, parse_vector
from m3l.store.layout import ModelLayout
from m3l.store.writer import FeatureStore
from tests.core.sample_outputs import random_vectors, write_features
from tests.testlib import REPO

MINILM = MODELS["minilm"]
TABLES = ("text_embeddings_minilm.parquet", "text_embeddings_minilm.h5")


@pytest.fixture
def reads(monkeypatch):
    """The ids whose JSON file is parsed from now on."""
    seen = []

    def spy(raw, movie_id, dim):
        seen.append(movie_id)
        return parse_vector(raw, movie_id, dim)
    monkeypatch.setattr(m3l.store.scan, "parse_vector", spy)
    return seen


def tables(output, info=MINILM):
    return {path.name: path.read_bytes() for path in ModelLayout(output, info).tables.values()}


def test_rerun_and_incremental_consolidation_read_only_new_files(tmp_path, reads):
    store = write_features(tmp_path, "minilm", random_vectors("minilm", [str(i) for i in range(1, 21)]))
    reads.clear()
    assert FeatureStore(tmp_path, MINILM).pending([str(i) for i in range(1, 23)]) == ["21", "22"]
    assert reads == []  # the index vouches for all 20 files
    store.write("21", np.ones(384, np.float32))
    consolidate(tmp_path, MINILM)
    assert reads == ["21"]
    ids, matrix = load_features(tmp_path, "minilm", source="hdf5")
    assert ids == [str(i) for i in range(1, 22)] and (matrix[-1] == 1).all()


@pytest.mark.parametrize("model", ["minilm", "vggish"])  # vggish: files hold vectors rounded to 6 decimals
def test_the_consolidation_after_a_run_reads_no_file_again(tmp_path, reads, model):
    info = MODELS[model]
    write_features(tmp_path, model, random_vectors(model, [str(i) for i in range(1, 11)]))
    (tmp_path / info.folder / "11.json").write_text("{broken")
    reads.clear()
    store = FeatureStore(tmp_path, info)
    todo = store.pending([str(i) for i in range(1, 14)])
    assert todo == ["11", "12", "13"] and reads == ["11"]
    for movie_id, vector in random_vectors(model, todo, seed=2).items():
        store.write(movie_id, vector)
    consolidate(tmp_path, info, store.scan)
    assert reads == ["11"]  # the run's vectors come from the run, the others from the old table
    after_run = tables(tmp_path, info)
    consolidate(tmp_path, info, full=True)
    assert tables(tmp_path, info) == after_run
    assert load_features(tmp_path, model, source="hdf5")[0] == [str(i) for i in range(1, 14)]


def test_a_bad_file_replaced_since_the_last_consolidation_is_read_alone(tmp_path, reads):
    store = write_features(tmp_path, "minilm", random_vectors("minilm", ["1", "2"]))
    (tmp_path / "minilm" / "3.json").write_text("{broken")
    consolidate(tmp_path, MINILM)  # the index notes 3.json as bad
    store.write("3", np.ones(384, np.float32))
    reads.clear()
    consolidate(tmp_path, MINILM)
    assert reads == ["3"]  # the old tables never held 3: they still hold exactly 1 and 2
    incremental = tables(tmp_path)
    consolidate(tmp_path, MINILM, full=True)
    assert tables(tmp_path) == incremental


def test_incremental_and_full_consolidation_write_byte_identical_tables(tmp_path):
    write_features(tmp_path, "minilm", random_vectors("minilm", ["3", "10", "200"]))
    store = write_features(tmp_path, "minilm", random_vectors("minilm", ["7", "1000"], seed=1))
    incremental = tables(tmp_path)
    consolidate(tmp_path, MINILM, full=True)
    assert tables(tmp_path) == incremental
    assert pq.read_table(tmp_path / TABLES[0]).column("movie_id").to_pylist() == [3, 7, 10, 200, 1000]
    store.write("007", np.ones(384, np.float32))  # no longer round-trips as an integer: every id a string
    consolidate(tmp_path, MINILM)
    incremental = tables(tmp_path)
    consolidate(tmp_path, MINILM, full=True)
    assert tables(tmp_path) == incremental
    assert pq.read_table(tmp_path / TABLES[0]).column("movie_id").to_pylist() == \
        ["007", "10", "1000", "200", "3", "7"]


@pytest.mark.parametrize("new_ids", [["1", "17", "25", "39", "41", "100"], ["1", "17", "x9"]],
                         ids=["integers", "a string id re-sorts the old rows"])
def test_incremental_consolidation_merges_new_ids_among_the_old_ones_a_chunk_at_a_time(tmp_path, monkeypatch,
                                                                                          new_ids):
    monkeypatch.setattr(m3l.store.tables.base, "CHUNK_BYTES", 3 * MINILM.dim * 4)  # three rows a chunk
    write_features(tmp_path, "minilm", random_vectors("minilm", [str(i) for i in range(0, 40, 2)]))
    write_features(tmp_path, "minilm", random_vectors("minilm", new_ids, seed=1))
    incremental = tables(tmp_path)
    consolidate(tmp_path, MINILM, full=True)
    assert tables(tmp_path) == incremental
    ids, matrix = load_features(tmp_path, "minilm", source="hdf5")
    json_ids, json_matrix = load_features(tmp_path, "minilm", source="json")
    assert ids == json_ids and len(ids) == 20 + len(new_ids)
    np.testing.assert_array_equal(matrix, json_matrix)


def rewrite(path, text, keep_stamp=False):
    """Rewrite a file in place (same inode), optionally restoring its mtime."""
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.truncate(0)
        handle.write(text.encode())
    if keep_stamp:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    else:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))


def vector_text(movie_id, value, dim=384):
    return '{"%s": [%s]}' % (movie_id, ", ".join([f"{value:.2f}"] * dim))


CHANGES = {
    "same size, new mtime": lambda folder: rewrite(folder / "2.json", vector_text("2", 0.25)),
    "new size": lambda folder: rewrite(folder / "2.json", vector_text("2", 10.25)),
    "deleted": lambda folder: (folder / "2.json").unlink(),
    "corrupt file": lambda folder: rewrite(folder / "2.json", '{"2": [0.5'),
    "corrupt index": lambda folder: (rewrite(folder / "2.json", vector_text("2", 0.25), keep_stamp=True),
                                     (folder.parent / "text_embeddings_minilm.index.npz").write_bytes(b"PK\x03")),
}


@pytest.mark.parametrize("change", CHANGES)
def test_the_index_is_ignored_and_the_tables_rebuilt_when_the_folder_changed_under_it(tmp_path, change, reads):
    folder = tmp_path / "minilm"
    FeatureStore(tmp_path, MINILM)
    for movie_id in ("1", "2", "3"):
        (folder / f"{movie_id}.json").write_text(vector_text(movie_id, 0.5))
    consolidate(tmp_path, MINILM)
    CHANGES[change](folder)
    reads.clear()
    consolidate(tmp_path, MINILM)
    assert sorted(reads) == sorted(path.stem for path in folder.iterdir())  # every file read again
    rebuilt = tables(tmp_path)
    ids, matrix = load_features(tmp_path, "minilm", source="hdf5")
    expected = {"same size, new mtime": 0.25, "new size": 10.25, "corrupt index": 0.25}
    if change in expected:
        assert ids == ["1", "2", "3"] and (matrix[1] == np.float32(expected[change])).all()
    else:
        assert ids == ["1", "3"]
    consolidate(tmp_path, MINILM, full=True)
    assert tables(tmp_path) == rebuilt


def test_a_table_replaced_behind_the_index_is_rebuilt(tmp_path, reads):
    write_features(tmp_path, "minilm", random_vectors("minilm", ["1", "2"]))
    (tmp_path / TABLES[1]).write_bytes(b"junk")
    reads.clear()
    consolidate(tmp_path, MINILM)
    assert sorted(reads) == ["1", "2"]
    assert load_features(tmp_path, "minilm", source="hdf5")[0] == ["1", "2"]


MEMORY_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    import h5py, numpy, orjson, pyarrow, pyarrow.parquet
    from dataclasses import replace
    import m3l.store.tables.base
    from m3l.models import MODELS
    from m3l.readers.audit import audit_model
    from m3l.store.consolidate import consolidate

    def rss_kib(field):
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith(field)).split()[1])

    step, output, dim = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    info = replace(MODELS["minilm"], name="tiny", folder="tiny", dim=dim)
    m3l.store.tables.base.CHUNK_BYTES = 1 << 20  # chunks far smaller than the matrix, as in a big folder
    before = rss_kib("VmRSS:")
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    if step == "consolidate":
        consolidate(output, info)
    else:
        assert audit_model(output, info, None).problems(accept_logged=False) == 0
    print(rss_kib("VmHWM:") - before)
""")


def peak_rss_growth_kib(step, output, dim):
    """How far a step raises the peak RSS of a fresh process above what its imports hold."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, "-c", MEMORY_CHILD, step, str(output), str(dim)], capture_output=True,
                            text=True, env=env, check=True)
    return int(result.stdout.split()[-1])


def write_tiny_folder(output, count, dim, start=0):
    folder = output / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    values = ", ".join(["0.123456789"] * dim)
    for movie_id in range(start, start + count):
        fd = os.open(folder / f"{movie_id}.json", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, f'{{"{movie_id}": [{values}]}}'.encode())
        os.close(fd)
    return folder


def test_a_folder_of_100k_files_consolidates_in_bounded_memory(tmp_path):
    count, dim = 100_000, 8
    folder = write_tiny_folder(tmp_path, count, dim)
    extra_kib = peak_rss_growth_kib("consolidate", tmp_path, dim)
    matrix_kib = count * dim * 4 / 1024
    # two float32 matrices, plus 1 KiB per file of bookkeeping (id, stamp, position, table writer);
    # a Python list of floats per file needed 1.5 KiB per file at this dimension
    assert extra_kib < 2 * matrix_kib + count * 1, (extra_kib, matrix_kib)
    with h5py.File(tmp_path / "text_embeddings_tiny.h5") as handle:
        assert handle["embeddings"].shape == (count, dim)
        assert handle["movie_ids"][-1] == count - 1
    shutil.rmtree(folder)  # pytest keeps the last runs' folders: do not leave 100k files behind


def incremental_growth_kib(output, count, dim):
    """The peak RSS growth of consolidating 1% new files into a consolidated folder of `count`."""
    folder = write_tiny_folder(output, count, dim)
    peak_rss_growth_kib("consolidate", output, dim)
    write_tiny_folder(output, max(1, count // 100), dim, start=count)
    growth = peak_rss_growth_kib("consolidate", output, dim)
    shutil.rmtree(folder)
    return growth


def test_an_incremental_consolidation_holds_no_matrix_of_the_folder(tmp_path):
    count, dim = 20_000, 1024
    libraries_kib = incremental_growth_kib(tmp_path / "small", 100, dim)  # what Arrow and HDF5 allocate at first use
    extra_kib = incremental_growth_kib(tmp_path / "big", count, dim)
    matrix_kib = count * dim * 4 / 1024
    # the old table is merged in a chunk at a time, and the scan's matrix holds the new vectors' rows only
    # (with huge pages each would fault in 2 MiB); what is left is a few dozen chunks that malloc keeps
    # (0.4 matrices here). Reading the old table whole took 2-3 matrices
    assert extra_kib < libraries_kib + 0.75 * matrix_kib, (extra_kib, libraries_kib, matrix_kib)


def test_verify_compares_big_tables_a_chunk_at_a_time(tmp_path):
    count, dim = 20_000, 512
    folder = write_tiny_folder(tmp_path, count, dim)
    peak_rss_growth_kib("consolidate", tmp_path, dim)
    extra_kib = peak_rss_growth_kib("verify", tmp_path, dim)
    matrix_kib = count * dim * 4 / 1024
    # the JSON folder's matrix and a chunk of each table at a time, the per-file bookkeeping, and what
    # Arrow's allocator keeps; reading each table whole beside the JSON matrix needed over 7 matrices
    assert extra_kib < 3 * matrix_kib + count * 1, (extra_kib, matrix_kib)
    shutil.rmtree(folder)


# Inputs no JSON file should be (issue items: float32 range, FIFOs, dangling links, directories, names)

def test_values_beyond_float32_are_recomputed_and_kept_out_of_the_tables(tmp_path, capsys):
    store = write_features(tmp_path, "minilm", random_vectors("minilm", ["5"]), consolidated=False)
    (tmp_path / "minilm" / "6.json").write_text('{"6": [1e39' + ", 0.5" * 383 + "]}")
    assert parse_vector(b'{"6": [1e39, 0.5]}', "6", 2) == BEYOND_FLOAT32
    assert store.pending(["5", "6"]) == ["6"]
    assert f"6 recompute existing 6.json: {BEYOND_FLOAT32}" in (tmp_path / "log_minilm.txt").read_text()
    consolidate(tmp_path, MINILM)
    assert f"6.json left out of the tables: {BEYOND_FLOAT32}" in capsys.readouterr().err
    ids, matrix = load_features(tmp_path, "minilm", source="parquet")
    assert ids == ["5"] and np.isfinite(matrix).all()


def finishes(action, fifo):
    """Run `action` in a thread: it must end within a minute (else unblock the FIFO and fail)."""
    errors = []

    def target():
        try:
            action()
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # a blocked reader sees end of file
        thread.join(10)
        pytest.fail(f"{action} hung on the FIFO")
    if errors:
        raise errors[0]


def test_a_fifo_in_a_model_folder_is_reported_and_never_opened(tmp_path, capsys):
    from consolidate import main as consolidate_main
    from export_mmrec import main as export_main
    from report import main as report_main
    from verify import main as verify_main

    output = tmp_path / "out"
    write_features(output, "minilm", random_vectors("minilm", ["1", "2", "3"]))
    fifo = output / "minilm" / "3.json"
    fifo.unlink()
    os.mkfifo(fifo)  # newer than the tables: readers go to the JSON folder
    item_map = tmp_path / "items.tsv"
    item_map.write_text("movie_id\titem_index\n1\t0\n2\t1\n3\t2\n")
    store = FeatureStore(output, MINILM)
    finishes(lambda: store.pending(["1", "2", "3"]), fifo)
    assert "3 recompute existing 3.json: entries that are not regular files (a FIFO, never opened)" in \
        (output / "log_minilm.txt").read_text()
    finishes(lambda: verify_main(["--output", str(output)]), fifo)
    assert "entries that are not regular files (a FIFO, never opened): 1: 3.json" in capsys.readouterr().out
    finishes(lambda: report_main(["--output", str(output)]), fifo)
    finishes(lambda: export_main(["--output", str(output), "--item-map", str(item_map), "--to", str(tmp_path / "mm")]),
             fifo)
    assert np.load(tmp_path / "mm" / "text" / "minilm.npy")[2].tolist() == [0.0] * 384
    finishes(lambda: consolidate_main(["--output", str(output)]), fifo)
    assert "3.json left out of the tables: entries that are not regular files (a FIFO" in capsys.readouterr().err
    assert load_features(output, "minilm")[0] == ["1", "2"]


def test_a_dangling_link_or_a_directory_never_blocks_the_rest(tmp_path, capsys):
    store = write_features(tmp_path, "minilm", random_vectors("minilm", ["1", "2"]), consolidated=False)
    folder = tmp_path / "minilm"
    (folder / "5.json").mkdir()
    (folder / "6.json").symlink_to(tmp_path / "nowhere.json")
    assert store.pending(["1", "2", "5", "6", "7"]) == ["6", "7"]
    log = (tmp_path / "log_minilm.txt").read_text()
    assert "5 failed 5.json is a directory: remove it to compute this id" in log
    assert "6 recompute existing 6.json: entries that are not regular files (a dangling symbolic link" in log
    store.write("6", np.ones(384, np.float32))  # replaces the link itself; its target is never created
    assert not (tmp_path / "nowhere.json").exists()
    consolidate(tmp_path, MINILM)
    assert "5.json left out of the tables: entries that are not regular files (a directory" in capsys.readouterr().err
    assert load_features(tmp_path, "minilm", source="hdf5")[0] == ["1", "2", "6"]
    assert FeatureStore(tmp_path, MINILM).pending(["1", "2", "5", "6"]) == []


def test_files_named_like_no_id_are_reported_and_left_out(tmp_path, capsys):
    from verify import main as verify_main

    write_features(tmp_path, "minilm", random_vectors("minilm", ["1", "2"]), consolidated=False)
    (tmp_path / "minilm" / "a b.json").write_text(vector_text("a b", 0.5))
    consolidate(tmp_path, MINILM)
    assert "a b.json left out of the tables: file names that are not valid ids" in capsys.readouterr().err
    assert pq.read_table(tmp_path / TABLES[0]).column("movie_id").to_pylist() == [1, 2]  # still integers
    assert verify_main(["--output", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "file names that are not valid ids: 1: a b.json" in out and "present 3, missing 0" in out
    assert "1 problem" in out


def test_ids_beyond_int64_are_stored_as_strings(tmp_path):
    huge = "9" * 20
    write_features(tmp_path, "minilm", random_vectors("minilm", ["1", huge]))
    assert pq.read_table(tmp_path / TABLES[0]).column("movie_id").to_pylist() == ["1", huge]
    assert load_features(tmp_path, "minilm", source="hdf5")[0] == ["1", huge]
