"""Provenance: every model folder records what produced it; a run with other weights refuses to mix
unless --allow-mixed, which logs each id; verify flags a mixed folder; consolidated tables carry it."""

from __future__ import annotations

import json
import os
import resource
import shutil

import h5py
import pyarrow.parquet as pq
import pytest

from m3l import models
from m3l.models import spec
from m3l.cli import main as extract
from m3l.errors import UserError
from m3l.readers.features import provenance
from m3l.model_store import ModelStore, file_table
from m3l.store.layout import ModelLayout
from m3l.store.provenance import METADATA_KEY, ProvenanceLog, record
from tests.spec_models import docs_encoder, importable
from tests.stores import add_minilm

MINILM = models.MODELS["minilm"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The real MiniLM, and a copy whose weights differ in one byte of one parameter."""
    original = tmp_path_factory.mktemp("models")
    add_minilm(original)
    changed = tmp_path_factory.mktemp("models-changed")
    shutil.copytree(original / "sentence-transformers", changed / "sentence-transformers")
    weights = changed / MINILM.files[0].path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    return original, changed


def write_plots(path, ids):
    path.write_text("movie_id\tplot\n" + "".join(f"{i}\tA plot about film {i}.\n" for i in ids))
    return path


def run(tmp_path, store, ids, *extra):
    return extract("text", ["--plots", str(write_plots(tmp_path / "plots.tsv", ids)), "--models", "minilm",
                            "--models-dir", str(store), "--output", str(tmp_path / "out"), "--device", "cpu", *extra])


def test_a_run_records_its_provenance_and_the_tables_carry_it(tmp_path, stores):
    original, _ = stores
    assert run(tmp_path, original, ["1", "2"]) == 0
    [entry] = ProvenanceLog(ModelLayout(tmp_path / "out", MINILM).provenance).records()
    assert entry["model"] == "minilm" and entry["recipe"] == MINILM.recipe
    assert entry["weights"] == ModelStore(original).weights_digest(MINILM.files)
    assert (entry["precision"], entry["device"]) == ("fp32", "cpu")
    assert set(entry["libraries"]) == {"torch", "transformers", "sentence-transformers", "torchvision", "av"}
    assert entry["libraries"]["torch"]
    stem = tmp_path / "out" / ModelLayout(tmp_path / "out", MINILM).table_stem
    from_parquet = json.loads(pq.read_schema(f"{stem}.parquet").metadata[METADATA_KEY.encode()])
    with h5py.File(f"{stem}.h5") as handle:
        from_hdf5 = json.loads(handle.attrs[METADATA_KEY])
    expected = {"provenance": entry, "others": []}
    assert from_parquet == from_hdf5 == expected
    for source in ("auto", "json", "parquet", "hdf5"):
        assert provenance(tmp_path / "out", "minilm", source=source) == expected


def test_changed_weights_refuse_to_mix_and_allow_mixed_logs_every_id(tmp_path, stores, capsys):
    from verify import main as verify

    original, changed = stores
    assert run(tmp_path, original, ["1", "2"]) == 0
    folder = tmp_path / "out" / "minilm"
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    capsys.readouterr()

    assert run(tmp_path, changed, ["1", "2", "3"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "weights" in line and "--output" in line and "--allow-mixed" in line
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before

    assert run(tmp_path, changed, ["1", "2", "3"], "--allow-mixed") == 0
    summary = provenance(tmp_path / "out", "minilm", source="json")
    [other] = summary["others"]
    assert other["ids"] == ["3"] and other["weights"] == ModelStore(changed).weights_digest(MINILM.files)
    pq_summary = json.loads(pq.read_schema(ModelLayout(tmp_path / "out", MINILM).tables["parquet"])
                            .metadata[METADATA_KEY.encode()])
    assert pq_summary == summary
    capsys.readouterr()

    assert verify(["--output", str(tmp_path / "out"), "--models", "minilm"]) == 1
    report = capsys.readouterr().out
    assert "ids written under a second provenance" in report and ": 1: 3" in report
    assert "provenance: weights " + summary["provenance"]["weights"][:12] in report


def entry(**changes):
    base = record("minilm", "a" * 64, 1, "fp32", "cpu")
    base["libraries"] = {"torch": "2.14.1", "transformers": "5.24.0", "sentence-transformers": "6.2.0",
                         "torchvision": None, "av": None}
    for key, value in changes.items():
        if key in base["libraries"]:
            base["libraries"][key] = value
        else:
            base[key] = value
    return base


@pytest.mark.parametrize("changes, outcome", [
    ({"device": "cuda"}, "warns"), ({"torch": "2.14.2"}, "warns"), ({"torch": "2.15.0"}, "refuses"),
    ({"precision": "fp16"}, "refuses"), ({"recipe": 2}, "refuses"), ({"weights": "b" * 64}, "refuses"),
    ({"torchvision": "0.29.1"}, "passes"),  # absent from the first run's venv: that model does not use it
])
def test_what_refuses_and_what_only_warns(tmp_path, capsys, changes, outcome):
    log = ProvenanceLog(tmp_path / "provenance.jsonl")
    assert log.claim(entry(), allow_mixed=False, present=[]) is None
    if outcome == "refuses":
        with pytest.raises(UserError, match="--allow-mixed"):
            log.claim(entry(**changes), allow_mixed=False, present=["1"])
    else:
        assert log.claim(entry(**changes), allow_mixed=False, present=["1"]) is None
        assert ("warning:" in capsys.readouterr().err) is (outcome == "warns")
    assert log.records() == [entry()]


def test_each_model_records_the_libraries_its_vectors_depend_on():
    vgg = record("vgg", "w", 1, "fp32", "cpu", models.MODELS["vgg"].libraries)
    assert {"torch", "Pillow"} <= vgg["libraries"].keys()
    assert "pytorchvideo" in models.MODELS["slowfast"].libraries and "Pillow" not in MINILM.libraries
    assert {"timm", "Pillow"} <= set(spec.parse("timm:org/model").libraries)


@pytest.mark.parametrize("before, after, outcome", [
    ("11.0.0", "11.1.0", "refuses"), ("11.0.0", "11.0.1", "warns"),
    (None, "11.1.0", "passes"),  # a record written before Pillow was recorded: not compared
])
def test_a_pillow_upgrade_stops_an_image_run_as_a_torch_one_does(tmp_path, capsys, before, after, outcome):
    def image_record(pillow):
        entry = record("vgg", "a" * 64, 1, "fp32", "cpu", models.MODELS["vgg"].libraries)
        entry["libraries"] = {"torch": "2.14.1", **({"Pillow": pillow} if pillow else {})}
        return entry

    log = ProvenanceLog(tmp_path / "provenance.jsonl")
    log.claim(image_record(before), allow_mixed=False, present=[])
    if outcome == "refuses":
        with pytest.raises(UserError, match="Pillow 11.0.0 -> 11.1.0"):
            log.claim(image_record(after), allow_mixed=False, present=["1"])
    else:
        assert log.claim(image_record(after), allow_mixed=False, present=["1"]) is None
        assert ("Pillow" in capsys.readouterr().err) is (outcome == "warns")


@pytest.mark.parametrize("planted", ["symlink", "fifo", "damaged"])
def test_a_planted_provenance_file_is_refused_never_followed_or_waited_on(tmp_path, planted):
    folder = tmp_path / "minilm"
    folder.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched\n")
    path = folder / "provenance.jsonl"
    if planted == "symlink":
        path.symlink_to(outside)
    elif planted == "fifo":
        os.mkfifo(path)
    else:
        path.write_text("{not json\n")
    with pytest.raises(UserError, match="symbolic link|not a regular file|is damaged"):
        ProvenanceLog(path).claim(record("minilm", "w", 1, "fp32", "cpu"), allow_mixed=False, present=[])
    assert outside.read_text() == "untouched\n"


def test_vectors_without_a_record_are_refused_unless_adopted_and_kept_apart(tmp_path, stores, capsys):
    """The published minilm folder (no provenance record), extended with a catalogue of two of its ids
    and a new one: refused with one line; with --adopt-as the published files stay as they were, the
    new id is written under this run's provenance, and every reader tells the two apart."""
    from tests.core.sample_outputs import random_vectors
    from tests.published import TOP, write_published
    from verify import main as verify

    original, _ = stores
    published = write_published(tmp_path / TOP, "minilm", random_vectors("minilm", ["1", "2", "3"]))
    output = published.parent
    before = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in published.iterdir()}
    plots = write_plots(tmp_path / "plots.tsv", ["2", "3", "4"])
    command = ["--plots", str(plots), "--models", "minilm", "--models-dir", str(original), "--output", str(output),
               "--device", "cpu"]
    capsys.readouterr()

    assert extract("text", command) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "no provenance record" in line and "--adopt-as" in line
    assert sorted(path.name for path in published.iterdir()) == sorted(before)

    assert extract("text", [*command, "--adopt-as", "m3l-published"]) == 0
    assert "minilm: 1 done, 2 already done" in capsys.readouterr().out
    assert {name: (published / name).read_bytes() for name in before} == {k: v[0] for k, v in before.items()}
    assert {name: (published / name).stat().st_mtime_ns for name in before} == {k: v[1] for k, v in before.items()}
    from m3l import load_features
    ids, _ = load_features(output, "minilm", source="hdf5")
    assert ids == ["1", "2", "3", "4"] and load_features(output, "minilm", source="parquet")[0] == ids
    summary = provenance(output, "minilm", source="json")
    assert summary["adopted"] == {"label": "m3l-published", "ids": ["1", "2", "3"]}
    assert summary["provenance"]["weights"] == ModelStore(original).weights_digest(MINILM.files)
    assert summary["others"] == []
    assert provenance(output, "minilm", source="parquet") == provenance(output, "minilm", source="hdf5") == summary

    assert verify(["--output", str(output), "--models", "minilm"]) == 0
    report = capsys.readouterr().out
    assert "3 ids adopted as m3l-published" in report and "provenance of every other id: weights" in report

    record_file = (published / "provenance.jsonl").read_bytes()
    files = {path.name: path.stat().st_mtime_ns for path in published.iterdir()}
    assert extract("text", [*command, "--adopt-as", "m3l-published"]) == 0
    assert "minilm: 0 done, 3 already done" in capsys.readouterr().out
    assert (published / "provenance.jsonl").read_bytes() == record_file
    assert {path.name: path.stat().st_mtime_ns for path in published.iterdir()} == files


@pytest.fixture
def letters(tmp_path, monkeypatch):
    """A run of the docs' own encoder class (no weights, 26-d): `letters(ids, *options)` → exit code."""
    importable(tmp_path / "code", monkeypatch, "letters", docs_encoder())

    def run_letters(ids, *extra):
        return extract("text", ["--plots", str(write_plots(tmp_path / "plots.tsv", ids)), "--models",
                                "letters:LetterCounts", "--models-dir", str(tmp_path / "models"), "--output",
                                str(tmp_path / "out"), "--device", "cpu", *extra])
    return run_letters


def one_error(capsys, *words: str) -> str:
    """The one `error:` line of what was printed (progress lines beside it), with every word in it; stdout."""
    captured = capsys.readouterr()
    [line] = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in captured.err and all(word in line for word in words), captured.err
    return captured.out


@pytest.mark.parametrize("line", [b'"record"', b"5", b'{"record": 5}', b'{"id": "7"}', b"garbage", b"\xff",
                                  b'{"record": {"libraries": {"torch": 5}}}', b'{"adopted": "x", "ids": 5}',
                                  b'{"adopted": "x", "ids": [], "id": "7"}'])
def test_a_damaged_or_crafted_provenance_line_is_one_error_everywhere(tmp_path, letters, capsys, line):
    from consolidate import main as consolidate
    from verify import main as verify

    assert letters(["1", "2"]) == 0
    with (tmp_path / "out" / "letters--LetterCounts" / "provenance.jsonl").open("ab") as handle:
        handle.write(line + b"\n")
    capsys.readouterr()
    assert letters(["1", "2", "3"]) == 2
    one_error(capsys, "provenance.jsonl is damaged (line 2")
    assert consolidate(["--output", str(tmp_path / "out")]) == 2
    one_error(capsys, "provenance.jsonl is damaged (line 2")
    assert verify(["--output", str(tmp_path / "out")]) == 1
    report = capsys.readouterr().out
    assert "provenance unreadable: 1:" in report and "verify: OK" not in report


def test_an_append_that_fails_leaves_whole_lines_and_stops_with_one_error(tmp_path, letters, capsys):
    """The file size limit (as `ulimit -f` sets it, or a full disk) cuts the third id line of a mixed run:
    nothing of it stays, that id's vector is not written, and the run stops with one line."""
    assert letters(["1", "2", "3"]) == 0
    folder = tmp_path / "out" / "letters--LetterCounts"
    path = folder / "provenance.jsonl"
    [first] = path.read_text().splitlines()
    path.write_text(first.replace('"weights": "', '"weights": "other ') + "\n")  # made with other weights
    id_line = json.dumps({"id": "4", "provenance": "0" * 12}, sort_keys=True) + "\n"
    room = len(first) + 1 + 2 * len(id_line) + 4  # this run's record and two id lines
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + room, hard))
    try:
        code = letters(["1", "2", "3", "4", "5", "6"], "--allow-mixed", "--no-consolidate")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert code == 2
    assert "2 done, 3 already done" in one_error(capsys, "cannot write", "provenance.jsonl")
    assert path.read_bytes().endswith(b"\n")
    written = [line["id"] for line in ProvenanceLog(path).lines() if "id" in line]
    [lost] = {"4", "5", "6"} - set(written)
    assert len(written) == 2 and not (folder / f"{lost}.json").exists()

    assert letters(["1", "2", "3", "4", "5", "6"], "--allow-mixed") == 0
    assert provenance(tmp_path / "out", "letters:LetterCounts")["others"][0]["ids"] == ["4", "5", "6"]


def test_weights_swapped_after_the_manifest_was_written_are_refused(tmp_path, stores, capsys):
    original, changed = stores
    store = tmp_path / "models"
    shutil.copytree(original, store)
    entry = MINILM.files[0]
    ModelStore(store).manifest_path(entry).write_text(json.dumps({"files": file_table(store / entry.path)}))
    assert run(tmp_path, store, ["1", "2"]) == 0
    shutil.copyfile(changed / entry.path / "model.safetensors", store / entry.path / "model.safetensors")
    capsys.readouterr()
    assert run(tmp_path, store, ["1", "2", "3"]) == 2
    err = capsys.readouterr().err
    assert "differs from its manifest" in err and "error: " in err and "weights" in err.split("error: ")[1]
