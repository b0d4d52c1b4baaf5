"""src/verify.py: a sound folder passes; every kind of damage is named, counted and fails the audit."""

from __future__ import annotations

import os
import shutil

import pytest

from m3l.models import MODELS
from m3l.store.consolidate import consolidate
from tests.core.sample_outputs import random_vectors, write_features
from tests.testlib import DATA, run_script

IDS = [str(i) for i in range(1, 11)]


def plots(path, ids):
    path.write_text("movie_id\tplot\n" + "".join(f"{i}\tPlot {i}.\n" for i in ids))
    return path


@pytest.fixture
def verify(capsys):
    """src/verify.py's main, in this process: (exit code, stdout, stderr)."""
    from verify import main

    def run(*args):
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def sound(tmp_path):
    """minilm vectors for ids 1-10 of a 10-plot catalogue, consolidated, and clip-image for 2 posters."""
    write_features(tmp_path / "out", "minilm", random_vectors("minilm", IDS))
    write_features(tmp_path / "out", "clip-image", random_vectors("clip-image", ["1", "2"]))
    return tmp_path / "out", plots(tmp_path / "plots.tsv", IDS)


def test_a_sound_folder_passes(verify, sound):
    output, catalogue = sound
    code, stdout, stderr = verify("--output", output, "--plots", catalogue)
    assert code == 0, stdout + stderr
    assert "minilm (text, 384-d): expected 10, present 10, missing 0" in stdout
    assert "clip-image (image, 512-d): expected ?, present 2, missing 0" in stdout
    assert stdout.rstrip().endswith("verify: OK (2 models checked)")


def test_every_kind_of_damage_is_reported(verify, sound):
    output, catalogue = sound
    folder = output / "minilm"
    (folder / "1.json").write_text('{"1": [0.1, 0.2')  # truncated
    (folder / "2.json").write_text('{"2": [0.5, 0.5]}')  # wrong length
    (folder / "3.json").write_text('{"3": [NaN' + ", 0.0" * 383 + "]}")
    (folder / "4.json").write_text('{"4": [' + ", ".join(["0.0"] * 384) + "]}")
    (folder / "5.json").write_text('{"55": [' + ", ".join(["1.0"] * 384) + "]}")  # another id's vector
    (folder / "6.json").unlink()
    (folder / "7.json").unlink()
    (output / "log_minilm.txt").write_text("2026-01-01T00:00:00Z minilm 6 failed empty or missing plot\n")
    (folder / ".8.json.abc123.tmp").write_text('{"8": [')  # a killed run's leftover
    (folder / "9.json").write_text('{"9": [' + ", ".join(["2.0"] * 384) + "]}")  # newer than the tables
    code, stdout, _ = verify("--output", output, "--plots", catalogue)
    assert code == 1
    report = stdout.split("clip-image")[0]
    for expected in ("expected 10, present 8, missing 2",
                     "missing 1: empty or missing plot: 6",
                     "missing 1: no log entry (never attempted?): 7",
                     "files that do not parse: 1: 1.json",
                     "wrong length (not 384): 1: 2.json",
                     "NaN or Inf values: 1: 3.json",
                     "all-zero vectors: 1: 4.json",
                     "files that are not {id: [...]} for their own id: 1: 5.json",
                     "stray temporary files (left by a killed run; the next run removes them): 1: .8.json.abc123.tmp",
                     "text_embeddings_minilm.parquet: vectors that differ from their JSON file: 2: 4, 9",
                     "text_embeddings_minilm.h5: ids without a JSON file: 2: 6, 7"):
        assert expected in report, report
    assert stdout.rstrip().endswith("verify: problems in minilm (2 models checked)")
    # --accept-logged forgives the logged miss, nothing else
    code, stdout, _ = verify("--output", output, "--plots", catalogue, "--accept-logged")
    assert code == 1 and "missing 1: empty or missing plot: 6" in stdout


def test_consolidated_tables_out_of_date_or_damaged(verify, sound):
    output, catalogue = sound
    write_features(output, "minilm", random_vectors("minilm", ["11"], seed=3), consolidated=False)
    (output / "text_embeddings_minilm.h5").write_bytes(b"not an HDF5 file")
    code, stdout, _ = verify("--output", output, "--models", "minilm")
    assert code == 1
    assert "text_embeddings_minilm.parquet: out of date, ids missing (run src/consolidate.py): 1: 11" in stdout
    assert "text_embeddings_minilm.h5 cannot be read: 1:" in stdout
    consolidate(output, MODELS["minilm"])
    assert verify("--output", output, "--models", "minilm")[0] == 0


def _lying_tables(output) -> None:
    """Tables of a few KB declaring 10^10 rows of 384 values: 14 TiB to allocate, days to walk through.
    (A Parquet footer is the Thrift-encoded FileMetaData, its length and `PAR1`.)"""
    import h5py
    import pyarrow as pa
    import pyarrow.parquet as pq

    with h5py.File(output / "text_embeddings_minilm.h5", "w") as handle:
        handle.create_dataset("movie_ids", shape=(10**10,), dtype="int64", chunks=(1024,))
        handle.create_dataset("embeddings", shape=(10**10, 384), dtype="float32", chunks=(16, 384))
    parquet = output / "text_embeddings_minilm.parquet"
    pq.write_table(pa.table({"movie_id": pa.array([], pa.int64()),
                             "embedding": pa.array([], pa.list_(pa.float32()))}), parquet)
    data = parquet.read_bytes()
    start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    footer = data[start:-8]
    at = footer.index(b"\x16\x00") + 1  # FileMetaData's num_rows (field 3, i64, after the schema list): 0
    # 10^10 as a Thrift compact i64: zigzag-encoded (doubled), 7 bits a byte, low bits first
    varint = bytes((2 * 10**10 >> 7 * k & 0x7F) | (0x80 if k < 4 else 0) for k in range(5))
    footer = footer[:at] + varint + footer[at + 1:]
    parquet.write_bytes(data[:start] + footer + len(footer).to_bytes(4, "little") + b"PAR1")


def test_a_table_declaring_more_rows_than_its_file_holds_is_damaged_not_read(sound, tmp_path):
    from m3l.readers.features import load_features

    output, _ = sound
    shutil.rmtree(output / "minilm")
    _lying_tables(output)
    for source in ("hdf5", "parquet"):
        with pytest.raises(ValueError, match="declares 10000000000 rows of 384 float32 values, more than its"):
            load_features(output, "minilm", source=source)
    result = run_script("verify.py", "--output", output, "--models", "minilm", timeout=120)
    assert result.returncode == 1, result.stderr
    assert "text_embeddings_minilm.h5 cannot be read: 1: text_embeddings_minilm.h5 declares 10000000000" in result.stdout


def test_fifos_planted_at_the_index_and_the_lock_never_block_a_reader(sound):
    """np.load waited on a FIFO at the index (consolidate.py, every run), verify.py on one at the lock."""
    output, _ = sound
    write_features(output, "minilm", random_vectors("minilm", ["11"], seed=3), consolidated=False)
    index = output / "text_embeddings_minilm.index.npz"
    index.unlink()
    os.mkfifo(index)
    result = run_script("consolidate.py", "--output", output, timeout=120)
    assert result.returncode == 0, result.stderr
    assert index.is_file()  # written anew, after every file was read again
    lock = output / ".minilm.lock"
    lock.unlink(missing_ok=True)
    os.mkfifo(lock)
    result = run_script("verify.py", "--output", output, "--models", "minilm", timeout=120)
    assert result.returncode == 1, result.stderr
    assert "lock files that are not regular files (never opened; a run refuses them: remove them): 1: .minilm.lock" \
        in result.stdout


def test_a_link_or_fifo_where_a_table_should_be_is_never_opened(verify, sound, tmp_path):
    from m3l.errors import UserError
    from m3l.readers.features import load_features, provenance

    output, _ = sound
    hdf5, parquet = output / "text_embeddings_minilm.h5", output / "text_embeddings_minilm.parquet"
    hdf5.rename(tmp_path / "elsewhere.h5")
    hdf5.symlink_to(tmp_path / "elsewhere.h5")
    parquet.unlink()
    os.mkfifo(parquet)
    code, stdout, _ = verify("--output", output, "--models", "minilm")
    assert code == 1
    assert ("entries that are not regular files where a consolidated table should be (never opened): 2: "
            f"{hdf5.name}, {parquet.name}") in stdout
    with pytest.raises(UserError, match="only something else of that name, never opened"):
        load_features(output, "minilm", source="hdf5")
    with pytest.raises(UserError, match="only something else of that name, never opened"):
        provenance(output, "minilm", source="parquet")  # a FIFO: h5py and pyarrow would wait on it
    assert load_features(output, "minilm")[0] == IDS  # from the JSON folder


def test_missing_ids_and_uncovered_catalogues_fail(verify, sound, tmp_path):
    output, _ = sound
    bigger = plots(tmp_path / "more.tsv", [*IDS, "11", "12"])
    trailers = tmp_path / "trailers.tsv"
    trailers.write_text("movie_id\ttrailer_path\n1\tnowhere.mp4\n")
    code, stdout, _ = verify("--output", output, "--plots", bigger, "--trailers", trailers)
    assert code == 1
    assert "missing 2: no log entry (never attempted?): 11, 12" in stdout
    assert "--trailers was given but none of its models has features" in stdout


def test_only_consolidated_tables_are_still_audited(verify, sound):
    output, _ = sound
    shutil.rmtree(output / "minilm")
    code, stdout, _ = verify("--output", output, "--models", "minilm")
    assert code == 0, stdout
    assert "no JSON folder minilm/" in stdout


@pytest.mark.parametrize("args, message", [
    (["--output", "no/such/folder"], "error: output folder not found: no/such/folder"),
    (["--output", "."], "error: no model folder or consolidated table under ."),
    (["--output", "{out}", "--models", "nope"], "error: unknown model 'nope'"),
])
def test_usage_errors(verify, sound, args, message):
    output, _ = sound
    code, stdout, stderr = verify(*(arg.format(out=output) for arg in args))
    assert code == 2 and stderr.startswith(message), stderr


def test_audit_of_a_real_run_passes(minilm_output):
    result = run_script("verify.py", "--output", minilm_output, "--plots", DATA / "plots.tsv")
    code, stdout = result.returncode, result.stdout
    assert code == 0, stdout
    assert "minilm (text, 384-d): expected 4, present 4, missing 0" in stdout
