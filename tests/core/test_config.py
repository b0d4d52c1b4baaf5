"""Config files: the extract scripts' options from TOML, --set overrides, --print-config, and every mistake
as one `error:` line naming the key."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

import m3l.config
from m3l import cli

CONFIG = """
output = "out"
device = "cpu"
batch-size = 4

[text]
plots = "input/plots.tsv"
models = ["minilm", "mpnet"]
workers = 0

[image]
exif-rotate = true
batch-size = 2

[video]
models = "r2p1d,slowfast"
"""


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "runs" / "m3l.toml"
    path.parent.mkdir()
    path.write_text(CONFIG)
    return path


def test_a_modality_reads_its_table_over_the_shared_defaults_with_paths_against_the_config_folder(config):
    _, args = cli.parse_arguments("text", ["--config", str(config)])
    assert (args.input, args.output) == (config.parent / "input/plots.tsv", config.parent / "out")
    assert (args.models, args.device, args.batch_size, args.workers) == ("minilm,mpnet", "cpu", 4, 0)
    _, args = cli.parse_arguments("image", ["--config", str(config)])
    assert (args.exif_rotate, args.batch_size, args.workers) == (True, 2, "auto")


def test_the_command_line_wins_over_set_which_wins_over_the_file(config):
    _, args = cli.parse_arguments("text", ["--config", str(config), "--set", "text.batch-size=8",
                                           "--set", "text.device=cuda", "--set", "precision=fp16",
                                           "--set", "output=elsewhere"])
    assert (args.batch_size, args.device, args.precision) == (8, "cuda", "fp16")
    assert args.output == Path("elsewhere")  # a path given on the command line is relative to the working directory
    _, args = cli.parse_arguments("text", ["--config", str(config), "--set", "text.batch-size=8", "--batch-size", "16"])
    assert args.batch_size == 16


def test_a_single_video_script_reads_video_with_its_own_model(config):
    _, args = cli.parse_arguments("video", ["--config", str(config)], default_models=["mvit"])
    assert (args.models, args.output) == ("mvit", config.parent / "out")
    _, args = cli.parse_arguments("video", ["--config", str(config)])
    assert args.models == "r2p1d,slowfast"


def test_print_config_prints_every_option_resolved_and_reads_back_the_same(config, capsys):
    assert cli.main("text", ["--config", str(config), "--print-config"]) == 0
    printed = capsys.readouterr().out
    resolved = tomllib.loads(printed)["text"]
    assert resolved["plots"] == str(config.parent / "input/plots.tsv")
    assert (resolved["batch-size"], resolved["models"], resolved["progress-every"]) == (4, "minilm,mpnet", 60.0)
    again = config.parent / "again.toml"
    again.write_text(printed)
    parser, first = cli.parse_arguments("text", ["--config", str(config)])
    _, second = cli.parse_arguments("text", ["--config", str(again)])
    assert m3l.config.resolved(parser, second) == m3l.config.resolved(parser, first) == resolved


@pytest.mark.parametrize("text, named", [
    ("[text]\nbatch_size = 3", "unknown option text.batch_size (did you mean batch-size?)"),
    ("[text]\nexif-rotate = true", "unknown option text.exif-rotate"),
    ("[sound]\nmodels = 'vggish'", "unknown section [sound]"),
    ("speed = 3", "unknown option speed"),
    ("[text]\nbatch-size = 0", "text.batch-size = int 0: must be at least 1"),
    ("[text]\nbatch-size = 'eight'", "text.batch-size"),
    ("batch-size = true", "batch-size must be a number, not bool true"),
    ("[text]\ndevice = 3", "text.device must be a string, not int 3"),
    ("[text]\nplots = ['a.tsv']", "text.plots must be a string"),
    ("[image]\nexif-rotate = 'yes'", "image.exif-rotate must be true or false"),
    ("[text]\nprecision = 'fp64'", "text.precision must be one of auto, fp32, tf32, fp16"),
    ("[text]\nworkers = -1", "text.workers = int -1: must be auto or at least 0"),
    ("[text\nmodels = 1", "is not valid TOML"),
])
def test_a_config_mistake_is_one_error_line_naming_the_key(tmp_path, capsys, text, named):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert cli.main("text", ["--config", str(path), "--print-config"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1 and named in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("override, named", [
    ("text.batch-size", "--set text.batch-size: expected modality.option=value"),
    ("text.models.x=1", "text.models must be a string, not dict"),
    ("txt.models=minilm", "unknown section [txt] (did you mean text?)"),
])
def test_a_bad_override_is_one_error_line(capsys, override, named):
    assert cli.main("text", ["--set", override, "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and named in err


def test_a_missing_config_file_is_one_error_line(tmp_path, capsys):
    assert cli.main("text", ["--config", str(tmp_path / "none.toml")]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot read config {tmp_path / 'none.toml'}")


def test_each_run_records_its_config_and_one_line_apart_from_provenance(tmp_path, minilm_store):
    config = tmp_path / "m3l.toml"
    config.write_text(f'models-dir = "{minilm_store}"\ndevice = "cpu"\n[text]\nmodels = "minilm"\nlimit = 1\n')
    output = tmp_path / "out"
    assert cli.main("text", ["--config", str(config), "--output", str(output)]) == 0
    provenance = (output / "minilm" / "provenance.jsonl").read_bytes()
    assert cli.main("text", ["--config", str(config), "--output", str(output), "--set", "text.limit=2"]) == 0
    assert (output / "minilm" / "provenance.jsonl").read_bytes() == provenance
    first, second = [json.loads(line) for line in (output / "runs.jsonl").read_text().splitlines()]
    assert (first["config"], first["models"], first["outcome"]) == (str(config), ["minilm"], "finished")
    assert second["command"].endswith("--set text.limit=2") and second["run_config"] != first["run_config"]
    recorded = tomllib.loads((output / second["run_config"]).read_text())["text"]
    assert (recorded["limit"], recorded["output"], recorded["models-dir"]) == (2, str(output), str(minilm_store))


def test_a_run_config_rerun_with_changes_records_a_run_config_of_its_own(tmp_path, minilm_store):
    output = tmp_path / "out"
    common = ["--output", str(output), "--models-dir", str(minilm_store), "--device", "cpu", "--models", "minilm"]
    assert cli.main("text", [*common, "--limit", "1"]) == 0
    first = output / json.loads((output / "runs.jsonl").read_text())["run_config"]
    assert cli.main("text", ["--config", str(first), "--set", "text.limit=2"]) == 0
    assert cli.main("text", ["--config", str(first)]) == 0
    _, changed, same = [json.loads(line)["run_config"] for line in (output / "runs.jsonl").read_text().splitlines()]
    assert changed != first.name and tomllib.loads((output / changed).read_text())["text"]["limit"] == 2
    assert same == first.name  # unchanged: repeats that run, under its own name
