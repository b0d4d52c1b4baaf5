"""Model specs on plots: st: and hf-text: against straight library calls, spec errors, a full run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import m3l
from m3l.errors import UserError
from m3l.readers.features import load_features
from m3l.models import spec
from m3l.store.layout import MARKER, ModelLayout, read_marker, recorded_marker
from tests.spec_models import docs_encoder, importable, spec_encoder
from tests.stores import minilm_source

ST_ID, HF_ID = "BAAI/bge-small-en-v1.5", "intfloat/e5-small-v2"
PLOTS = ["a detective returns to her home town", "the mill burned", "a young pianist learns that the orchestra "
         "is bankrupt while every neighbour keeps a secret about the night the river dried"]


def _tiny_bert(folder, seed: int):
    """A random one-layer BERT with MiniLM's vocabulary, saved as the hub serves it (safetensors)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast(vocab_file=str(minilm_source() / "vocab.txt"))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.model_max_length = 128
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def spec_store(tmp_path_factory):
    """bge-style sentence-transformers folder (CLS pooling, normalised) and an e5-style Hugging Face folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    store = tmp_path_factory.mktemp("spec-models")
    hf = _tiny_bert(store / ".bert", seed=3)
    SentenceTransformer(modules=[Transformer(str(hf), max_seq_length=128), Pooling(32, "cls"), Normalize()]).save(
        str(store / ST_ID))
    _tiny_bert(store / HF_ID, seed=4)
    return store



def test_st_spec_equals_sentence_transformers_encode(spec_store):
    encoder = spec_encoder(spec_store, f"st:{ST_ID}")
    assert encoder.info.dim == 32
    expected = st_reference(spec_store / ST_ID)(PLOTS)
    np.testing.assert_allclose(encoder.embed(PLOTS), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("pool", ["mean", "cls"])
def test_hf_text_spec_equals_automodel_pooling(spec_store, pool):
    import torch
    from transformers import AutoModel, AutoTokenizer

    encoder = spec_encoder(spec_store, f"hf-text:{HF_ID}?pool={pool}")
    tokenizer = AutoTokenizer.from_pretrained(spec_store / HF_ID)
    model = AutoModel.from_pretrained(spec_store / HF_ID).eval()
    expected = []
    for plot in PLOTS:  # one at a time: no padding
        with torch.no_grad():
            states = model(**tokenizer(plot, truncation=True, return_tensors="pt")).last_hidden_state[0]
        expected.append((states[0] if pool == "cls" else states.mean(0)).numpy())
    assert encoder.info.dim == 32
    np.testing.assert_allclose(encoder.embed(PLOTS), np.stack(expected), atol=1e-5, rtol=0)


def test_hf_text_spec_tokenizes_only_the_start_of_a_long_plot(spec_store, monkeypatch):
    import torch
    from transformers import AutoModel, AutoTokenizer

    encoder = spec_encoder(spec_store, f"hf-text:{HF_ID}?pool=mean")
    plot = " ".join(PLOTS * 5000)
    model, tokenizer = AutoModel.from_pretrained(spec_store / HF_ID).eval(), AutoTokenizer.from_pretrained(
        spec_store / HF_ID)
    with torch.no_grad():
        expected = model(**tokenizer(plot, truncation=True, return_tensors="pt")).last_hidden_state[0].mean(0)
    seen = []
    call = type(encoder.tokenizer).__call__
    monkeypatch.setattr(type(encoder.tokenizer), "__call__",
                        lambda self, text, *args, **kwargs: seen.append(text) or call(self, text, *args, **kwargs))
    np.testing.assert_allclose(encoder.embed([plot])[0], expected.numpy(), atol=1e-5, rtol=0)
    assert [len(text) for text in seen[-1]] == [128 * 16]  # the batch: 16 characters per token kept


def test_spec_names_folders_and_store_paths():
    info = spec.parse(f"st:{ST_ID}")
    assert (info.folder, info.files[0].path, ModelLayout(Path("out"), info).table_stem) == (
        "st--BAAI--bge-small-en-v1.5", ST_ID, "text_embeddings_st--BAAI--bge-small-en-v1.5")
    pinned = spec.parse(f"hf-text:{HF_ID}@v1.0?pool=cls")
    assert (pinned.folder, pinned.files[0].path, pinned.files[0].revision) == (
        "hf-text--intfloat--e5-small-v2@v1.0+pool=cls", f"{HF_ID}@v1.0", "v1.0")
    assert spec.parse(f"hf-text:{HF_ID}?pool=mean").folder == spec.parse(f"hf-text:{HF_ID}").folder
    assert "*.safetensors" in info.files[0].allow_patterns


@pytest.mark.parametrize("text, message", [
    ("onnx:BAAI/bge-small-en-v1.5", "unknown model family 'onnx'"),
    ("st:BAAI/bge small", "malformed model id"),
    ("st:BAAI//bge", "malformed model id"),
    ("st:BAAI/bge@", "malformed revision"),
    ("st:BAAI/bge@a..b", "malformed revision"),
    ("st:BAAI/bge?pool=cls", "unknown option 'pool'"),
    ("hf-text:BAAI/bge?pool=max", "option pool"),
    ("no_such_module_m3l:Encoder", "cannot import no_such_module_m3l"),
    ("m3l.models.spec:SpecInfo", "not a subclass of m3l.models.base.Encoder"),
])
def test_spec_errors_name_the_problem(text, message):
    with pytest.raises(UserError, match=message):
        spec.parse(text)


def st_reference(path):
    """SentenceTransformer.encode, one plot per call."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu")
    return lambda plots: np.stack([model.encode(plot) for plot in plots])


def _extract(store, output, plots_tsv, models_arg: str) -> int:
    from m3l.cli import main

    return main("text", ["--plots", str(plots_tsv), "--models", models_arg, "--models-dir", str(store),
                         "--output", str(output)])


@pytest.fixture
def plots_tsv(tmp_path):
    path = tmp_path / "plots.tsv"
    path.write_text("movie_id\tplot\n" + "".join(f"{i}\t{p}\n" for i, p in enumerate(PLOTS, start=1)) + "4\t\n")
    return path


def test_spec_model_runs_resumes_consolidates_and_is_read_back(spec_store, plots_tsv, tmp_path, capsys):
    from consolidate import main as consolidate_main
    from report import main as report_main
    from verify import main as verify_main

    from m3l.readers.features import list_models

    output, folder = tmp_path / "out", "st--BAAI--bge-small-en-v1.5"
    assert _extract(spec_store, output, plots_tsv, f"st:{ST_ID}") == 0
    assert "3 done, 0 already done, 0 failed, 1 skipped" in capsys.readouterr().out
    assert sorted(p.name for p in (output / folder).glob("*.json")) == ["1.json", "2.json", "3.json"]
    assert " 4 skipped " in (output / f"log_{folder}.txt").read_text()
    assert (output / f"text_embeddings_{folder}.parquet").is_file() and (output / f"text_embeddings_{folder}.h5").is_file()
    assert _extract(spec_store, output, plots_tsv, f"st:{ST_ID}") == 0
    assert "0 done, 3 already done" in capsys.readouterr().out

    ids, matrix = load_features(output, f"st:{ST_ID}")
    assert ids == ["1", "2", "3"] and matrix.shape == (3, 32)
    np.testing.assert_allclose(matrix, st_reference(spec_store / ST_ID)(PLOTS), atol=1e-5, rtol=0)
    assert np.array_equal(load_features(output, folder, source="json")[1], matrix)
    [summary] = list_models(output)
    assert (summary.name, summary.folder, summary.dim, summary.count) == (f"st:{ST_ID}", folder, 32, 3)
    assert consolidate_main(["--output", str(output)]) == 0
    assert verify_main(["--output", str(output), "--plots", str(plots_tsv), "--accept-logged"]) == 0
    assert f"{folder} (text, 32-d)" in capsys.readouterr().out
    assert report_main(["--output", str(output)]) == 0
    assert folder in (output / "report.html").read_text()


@pytest.mark.parametrize("text, message", [
    (f"hf-text:{HF_ID}?pooling=cls", "unknown option 'pooling'"),
    ("hf-image:facebook/dinov2-small", "is for the image modality, not text"),
    ("st:BAAI/bge@", "malformed revision"),
])
def test_spec_mistakes_are_one_error_line_and_exit_2(spec_store, plots_tsv, tmp_path, capsys, text, message):
    assert _extract(spec_store, tmp_path / "out", plots_tsv, text) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_spec_missing_from_the_store_names_its_download(spec_store, plots_tsv, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("M3L_OFFLINE", "1")
    assert _extract(spec_store, tmp_path / "out", plots_tsv, "hf-text:BAAI/absent?pool=cls") == 2
    err = capsys.readouterr().err
    assert "download_models.py --modality text" in err and "--models 'hf-text:BAAI/absent?pool=cls'" in err


def test_own_encoder_class_from_the_docs_runs_like_the_others(spec_store, plots_tsv, tmp_path, monkeypatch, capsys):
    importable(tmp_path / "code", monkeypatch, "letters", docs_encoder())
    output = tmp_path / "out"
    assert _extract(spec_store, output, plots_tsv, "letters:LetterCounts") == 0
    assert "3 done" in capsys.readouterr().out
    ids, matrix = load_features(output, "letters:LetterCounts")
    assert ids == ["1", "2", "3"] and matrix.shape == (3, 26)
    np.testing.assert_allclose(matrix.sum(axis=1), 1, atol=1e-6)
    assert (output / "text_embeddings_letters--LetterCounts.h5").is_file()
    marker = {"spec": "letters:LetterCounts", "dim": 26, "modality": "text"}
    assert recorded_marker(output / "letters--LetterCounts") == marker


def test_spec_download_takes_only_what_its_loader_reads(spec_store, tmp_path):
    from tests.hub import Hub, read_folder
    from tests.testlib import run_script

    published = read_folder(spec_store / HF_ID)
    unused = {"pytorch_model.bin": b"0" * 64, "tf_model.h5": b"1" * 64, "onnx/model.onnx": b"2" * 64,
              "flax_model.msgpack": b"3" * 64}
    with Hub() as hub:
        hub.repos[HF_ID] = {**published, **unused}
        env = {"M3L_OFFLINE": "0", "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"),
               "NO_PROXY": "127.0.0.1"}
        result = run_script("download_models.py", "--modality", "text", "--models", f"hf-text:{HF_ID}?pool=cls",
                            "--models-dir", tmp_path / "models", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "models" / HF_ID
    assert {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} == set(published)


@pytest.mark.parametrize("planted", ["fifo", "symlink", "not a marker"])
def test_a_planted_spec_marker_is_no_marker_and_never_blocks(tmp_path, planted):
    folder = tmp_path / spec.parse("st:BAAI/bge-small-en-v1.5").folder
    folder.mkdir()
    marker = folder / MARKER
    if planted == "fifo":
        os.mkfifo(marker)
    elif planted == "symlink":
        (tmp_path / "elsewhere").write_text('{"spec": "st:BAAI/bge-small-en-v1.5", "dim": 384}')
        marker.symlink_to(tmp_path / "elsewhere")
    else:
        marker.write_text("[1, 2]")
    assert read_marker(folder) is None


@pytest.mark.parametrize("models_arg, message", [
    ("st:a/b@x/y,st:a/b@x--y", "st:a/b@x/y and st:a/b@x--y write to the same output folder st--a--b@x--y"),
    (f"st:a/{'b' * 300}", "is too long: its output folder name would be 307 bytes"),
])
def test_specs_that_name_no_usable_folder_are_refused_before_any_work(spec_store, plots_tsv, tmp_path, monkeypatch,
                                                                     capsys, models_arg, message):
    monkeypatch.setenv("M3L_OFFLINE", "1")
    assert _extract(spec_store, tmp_path / "out", plots_tsv, models_arg) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_reading_a_folder_never_imports_the_class_its_marker_names(tmp_path, monkeypatch, capsys):
    """A downloaded features folder whose marker names `pwn:X`, a `pwn.py` on the path: every reader
    lists, reads, audits and consolidates the folder from its marker alone and never runs the module."""
    from consolidate import main as consolidate_main
    from m3l.readers.compare import compare, parse_tolerances
    from report import main as report_main
    from verify import main as verify_main

    ran = tmp_path / "ran"
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "pwn.py").write_text(f"open({str(ran)!r}, 'w').close()\nX = object\n")
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    output = tmp_path / "out"
    folder = output / "pwn--X"
    folder.mkdir(parents=True)
    (folder / MARKER).write_text('{"spec": "pwn:X", "dim": 3, "modality": "text"}')
    (folder / "1.json").write_text('{"1": [0.25, 0.5, 0.75]}')
    (folder / "2.json").write_text('{"2": [0.25, 0.5')  # a corrupt file verify must still report

    [summary] = m3l.list_models(output)
    assert (summary.name, summary.modality, summary.dim, summary.count) == ("pwn:X", "text", 3, 1)
    for name in ("pwn:X", "pwn--X"):
        ids, matrix = load_features(output, name)
        assert ids == ["1"] and matrix.tolist() == [[0.25, 0.5, 0.75]]
    capsys.readouterr()
    assert verify_main(["--output", str(output)]) == 1
    assert verify_main(["--output", str(output), "--models", "pwn:X"]) == 1
    out = capsys.readouterr().out
    assert "2.json" in out and "verify: OK" not in out
    assert consolidate_main(["--output", str(output)]) == 0
    assert report_main(["--output", str(output)]) == 0
    [same] = compare(output, output, ["pwn:X"], parse_tolerances(["pwn:X=0"]))
    assert same.max_abs == 0
    assert not ran.exists() and "pwn" not in sys.modules

    # a marker written before the modality was recorded: the consolidated tables' name gives it
    (folder / MARKER).write_text('{"spec": "pwn:X", "dim": 3}')
    assert [(s.name, s.modality, s.count) for s in m3l.list_models(output)] == [("pwn:X", "text", 1)]
    (output / "text_embeddings_pwn--X.h5").unlink()
    (output / "text_embeddings_pwn--X.parquet").unlink()
    (output / "text_embeddings_pwn--X.index.npz").unlink()
    assert m3l.list_models(output) == []
    with pytest.raises(UserError, match="no features of pwn:X"):
        load_features(output, "pwn:X")
    assert not ran.exists() and "pwn" not in sys.modules


CHANGED_AT_LOAD = """import numpy as np

from m3l.models.base import Encoder


class LetterCounts(Encoder):
    modality = "text"

    def load(self):
        self.info = self.info.with_dim(5)

    def embed(self, plots):
        return np.ones((len(plots), 5), dtype=np.float32)
"""


def test_a_dim_that_disagrees_with_the_folder_is_one_error_before_any_work(plots_tsv, tmp_path,
                                                                             monkeypatch, capsys):
    from consolidate import main as consolidate_main

    declared = docs_encoder()
    undeclared = declared.replace("    dim = 26\n", "").replace("self.dim", "self.info.dim")
    importable(tmp_path / "code", monkeypatch, "letters", undeclared.replace('"""Nothing to load: no weights."""',
                                                                 "self.info = self.info.with_dim(26)"))
    store, output = tmp_path / "models", tmp_path / "out"  # a class without files needs no store
    assert _extract(store, output, plots_tsv, "letters:LetterCounts") == 0
    marker = output / "letters--LetterCounts" / MARKER
    tables = {path: path.read_bytes() for path in output.glob("text_embeddings_*")}
    assert load_features(output, "letters:LetterCounts", source="hdf5")[0] == ["1", "2", "3"]

    def one_error(code: int, *words: str) -> None:
        assert code == 2
        err = capsys.readouterr().err
        [line] = [line for line in err.splitlines() if line.startswith("error: ")]  # beside progress lines
        assert "Traceback" not in err and all(word in line for word in words), line
        assert {path: path.read_bytes() for path in output.glob("text_embeddings_*")} == tables

    capsys.readouterr()
    marker.write_text('{"spec": "letters:LetterCounts", "dim": 5, "modality": "text"}')  # edited by hand
    one_error(_extract(store, output, plots_tsv, "letters:LetterCounts"), "5 values", "marker says")
    one_error(consolidate_main(["--output", str(output)]), "marker")
    with pytest.raises(UserError, match="marker"):
        load_features(output, "letters:LetterCounts", source="json")

    marker.write_text('{"spec": "letters:LetterCounts", "dim": 26, "modality": "text"}')
    importable(tmp_path / "code", monkeypatch, "letters", declared.replace("dim = 26", "dim = 5"))  # the class changed
    one_error(_extract(store, output, plots_tsv, "letters:LetterCounts"), "declares dim 5", "says 26")

    importable(tmp_path / "code", monkeypatch, "letters", CHANGED_AT_LOAD)  # a dim read at load that changed
    more = tmp_path / "more.tsv"
    more.write_text(plots_tsv.read_text() + "5\tone plot more\n")
    one_error(_extract(store, output, more, "letters:LetterCounts"), "gives 5-d vectors", "says 26")
    assert not (output / "letters--LetterCounts" / "5.json").exists()

    importable(tmp_path / "code", monkeypatch, "nodim", undeclared)  # nor sets one at load
    one_error(_extract(store, tmp_path / "other", plots_tsv, "nodim:LetterCounts"), "no dimension")


def test_own_encoder_without_files_that_fails_to_load_is_one_error_line(spec_store, plots_tsv, tmp_path, monkeypatch,
                                                                        capsys):
    (tmp_path / "broken_encoder.py").write_text(
        "from m3l.models.base import Encoder\n\n\nclass Broken(Encoder):\n    modality = 'text'\n    dim = 4\n\n"
        "    def load(self):\n        raise RuntimeError('no such service')\n\n    def embed(self, plots):\n"
        "        raise AssertionError('never loaded')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _extract(spec_store, tmp_path / "out", plots_tsv, "broken_encoder:Broken") == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if not line.startswith("progress: ")] == [
        "error: could not load broken_encoder:Broken: RuntimeError: no such service"]
