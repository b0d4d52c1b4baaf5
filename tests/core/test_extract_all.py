"""extract_all.py: the whole catalogue from one config, each modality in its own venv, then verify and report;
signals reach every child, progress.json is always whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from m3l import cli, extract_all
from tests.core.extractors import EXTRACTORS, OFFLINE, assert_same_vectors, snapshot, wait_for
from tests.testlib import REPO, SRC

# A stand-in for every venv's Python: it answers for the extract scripts, verify.py and report.py, and
# leaves the arguments each got in <STUB_STATE>/<script>.argv. An extractor reports progress until a signal
# stops it, then prints its summary, as the real ones do; where STUB_FINISH is set (a rerun that resumes)
# it finishes at once, and where STUB_BAD_BYTES is set it first prints a line that is not UTF-8 and more
# than a pipe holds.
STUB = """\
import json, os, signal, sys, time
from pathlib import Path

script = Path(sys.argv[1]).stem
state = Path(os.environ["STUB_STATE"])
(state / f"{script}.argv").write_text(json.dumps(sys.argv[2:]))
if os.environ.get("STUB_BAD_BYTES"):
    sys.stdout.buffer.write(b"\\xff\\xfe not utf-8\\n" + b"filler\\n" * 40000)
if script in ("verify", "report") or os.environ.get("STUB_FINISH"):
    print(f"{script}: finished")
    sys.exit(0)
stop = []
signal.signal(signal.SIGINT, lambda signum, frame: stop.append(130))
signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(143))
(state / script).write_text(str(os.getpid()))
done = 0
while not stop:
    done += 1
    print(f"progress: {script} {done}/1000000, 50.00/s last 0.02 s, 40.00/s overall, ETA 5:33:20, 0 failed",
          file=sys.stderr, flush=True)
    time.sleep(0.02)
print(f"{script}: {done} done, stopped by a signal")
sys.exit(stop[0])
"""


@pytest.fixture
def stub_venvs(tmp_path) -> Path:
    venvs = tmp_path / "venvs"
    for modality in ("text", "image", "audio", "video"):
        python = venvs / modality / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text(f"#!{sys.executable}\n{STUB}")
        python.chmod(0o755)
    (tmp_path / "state").mkdir()
    return venvs


def stub_config(tmp_path: Path) -> Path:
    config = tmp_path / "all.toml"
    config.write_text('output = "out"\nprogress-every = 0.05\n[text]\n[image]\n')
    return config


def start_all(*args: object, state: Path, finish: bool = False, bad_bytes: bool = False) -> subprocess.Popen:
    env = {**os.environ, **OFFLINE, "STUB_STATE": str(state), **({"STUB_FINISH": "1"} if finish else {}),
           **({"STUB_BAD_BYTES": "1"} if bad_bytes else {})}
    return subprocess.Popen([sys.executable, str(SRC / "extract_all.py"), *map(str, args)], cwd=REPO, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_every_child_cleanly_and_a_rerun_completes(tmp_path, stub_venvs, signum, code):
    config, state = stub_config(tmp_path), tmp_path / "state"
    process = start_all("--config", config, "--venvs", stub_venvs, state=state)
    wait_for(lambda: (state / "extract_text").exists(), process, timeout=120)
    child = int((state / "extract_text").read_text())
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert not alive(child)  # stopped and waited for: no orphan left running
    assert "[text] extract_text: " in stdout and "stopped by a signal" in stdout  # its own summary, passed on
    assert "extract_all: text interrupted" in stdout and "extract_all: image not started" in stdout
    assert "extract_all: verify not started" in stdout and "interrupted:" in stderr
    assert not (state / "extract_images").exists()
    output = tmp_path / "out"
    steps = json.loads((output / "progress.json").read_text())["steps"]
    assert steps["text"]["state"] == "interrupted" and steps["text"]["exit"] == code
    assert [json.loads(line)["outcome"] for line in (output / "runs.jsonl").read_text().splitlines()] == \
        ["interrupted"]

    rerun = start_all("--config", config, "--venvs", stub_venvs, state=state, finish=True)
    stdout, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert "[text] extract_text: finished" in stdout and "extract_all: OK" in stdout
    assert [json.loads(line)["outcome"] for line in (output / "runs.jsonl").read_text().splitlines()] == \
        ["interrupted", "finished"]


def test_progress_json_is_whole_whenever_it_is_read_and_each_running_modality_gets_lines(tmp_path, stub_venvs):
    state = tmp_path / "state"
    process = start_all("--config", stub_config(tmp_path), "--venvs", stub_venvs, state=state)
    path, seen = tmp_path / "out" / "progress.json", []
    try:
        wait_for(path.exists, process, timeout=120)
        steps = json.loads(path.read_bytes())["steps"]
        assert {name: steps[name]["state"] for name in ("image", "verify", "report")} == \
            dict.fromkeys(("image", "verify", "report"), "pending")  # every step listed from the start
        while len({step["progress"]["done"] for step in seen if step.get("progress")}) < 20:
            seen.append(json.loads(path.read_bytes())["steps"]["text"])  # a half-written file would not parse
            assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    progress = [line for line in stderr.splitlines() if line.startswith("progress: text ")]
    assert progress and all("/1000000, " in line for line in progress[1:]), stderr


def test_a_table_missing_from_the_config_is_skipped_and_config_mistakes_are_one_line(tmp_path, stub_venvs):
    config = tmp_path / "text.toml"
    config.write_text('output = "out"\n[text]\n')
    process = start_all("--config", config, "--venvs", stub_venvs, "--set", "video.batch-size=2",
                        state=tmp_path / "state", finish=True)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "[image] skipped: no [image] table" in stdout and "[video] skipped" in stdout  # --set adds no table
    assert not (tmp_path / "state" / "extract_video.argv").exists()
    assert json.loads((tmp_path / "out" / "progress.json").read_text())["steps"]["audio"]["state"] == "skipped"
    for text, named in [('[text]\nbatch-size = "x"', "text.batch-size"),
                        ('[video]\noutput = "a"\n[text]\n', "one output folder"),
                        ("models-dir = 1", "models-dir must be a string"), ("device = 'cpu'", "nothing to run")]:
        config.write_text(text)
        process = start_all("--config", config, state=tmp_path / "state")
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 2 and stderr.startswith("error: ") and named in stderr, stderr
        assert stderr.count("\n") == 1 and stdout == ""


def test_the_layout_of_the_config_reaches_every_extractor_and_verify_and_report(tmp_path, stub_venvs):
    state, config = tmp_path / "state", tmp_path / "all.toml"
    config.write_text('output = "out"\nlayout = "m3l"\n[text]\n[image]\n')
    process = start_all("--config", config, "--venvs", stub_venvs, state=state, finish=True)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stdout + stderr
    for modality, script in (("text", "extract_text"), ("image", "extract_images")):
        _, arguments = cli.parse_arguments(modality, json.loads((state / f"{script}.argv").read_text()))
        assert arguments.layout == "m3l"
    for script in ("verify", "report"):
        arguments = json.loads((state / f"{script}.argv").read_text())
        assert arguments[arguments.index("--layout") + 1] == "m3l"
    config.write_text('output = "mixed"\n[text]\nlayout = "m3l"\n[image]\n')
    process = start_all("--config", config, "--venvs", stub_venvs, state=state)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2 and stderr.startswith("error: config: every modality must write in one layout")
    assert stderr.count("\n") == 1 and stdout == ""


def test_the_config_run_gives_the_vectors_and_tables_of_separate_script_runs(tmp_path, clean_run, extractor_store):
    """Every modality in its own venv from one config (--limit 2, --parallel) against each script's own run."""
    tables = []
    for extractor in EXTRACTORS:
        catalogue, _ = clean_run(extractor)
        tables.append(f'[{extractor.modality}]\n{extractor.input_flag[2:]} = "{catalogue}"\n'
                      f'models = "{extractor.models}"\nbatch-size = {extractor.batch_size}\n'
                      f'models-dir = "{extractor_store(extractor)}"\n')
    config = tmp_path / "all.toml"
    config.write_text('output = "out"\ndevice = "cpu"\nlimit = 2\nprogress-every = 0.5\n' + "".join(tables))
    result = subprocess.run([sys.executable, str(SRC / "extract_all.py"), "--config", str(config), "--parallel"],
                            cwd=REPO, capture_output=True, text=True, timeout=900, env={**os.environ, **OFFLINE})
    assert result.returncode == 0, result.stdout + result.stderr
    output = tmp_path / "out"
    for extractor in EXTRACTORS:
        found, expected = snapshot(output, extractor), snapshot(clean_run(extractor)[1], extractor)
        ids = sorted(found[extractor.folders[0]])
        assert len(ids) == 2
        assert_same_vectors(found, {source: {i: vectors[i] for i in ids} for source, vectors in expected.items()})
    assert (output / "report.html").exists() and "verify: OK" in result.stdout
    assert len(list(output.glob("run_*.toml"))) == 1  # every child ran on the run config extract_all wrote
    steps = json.loads((output / "progress.json").read_text())["steps"]
    for extractor in EXTRACTORS:  # each child's last progress line: all its items done
        models = steps[extractor.modality]["models"]
        assert steps[extractor.modality]["state"] == "finished"
        assert all((models[folder]["done"], models[folder]["total"]) == (2, 2) for folder in extractor.folders), models
    assert "Loading weights" not in result.stderr and "\r" not in result.stderr  # no library's bar in a log



def run_records(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "runs.jsonl").read_text().splitlines()]


def finish_all(*args: object, state: Path, bad_bytes: bool = False) -> tuple[int, str, str]:
    process = start_all(*args, state=state, finish=True, bad_bytes=bad_bytes)
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return process.returncode, stdout, stderr


def test_set_on_a_run_config_reaches_the_children_through_a_run_config_of_its_own(tmp_path, stub_venvs):
    state, output, config = tmp_path / "state", tmp_path / "out", tmp_path / "text.toml"
    config.write_text('output = "out"\n[text]\nbatch-size = 4\n')
    assert finish_all("--config", config, "--venvs", stub_venvs, state=state)[0] == 0
    first = output / run_records(output)[0]["run_config"]
    code, _, stderr = finish_all("--config", first, "--set", "text.batch-size=8", "--venvs", stub_venvs,
                                 state=state)
    assert code == 0, stderr
    second = output / run_records(output)[1]["run_config"]
    arguments = json.loads((state / "extract_text.argv").read_text())
    assert second != first and arguments == ["--config", str(second)]
    assert cli.parse_arguments("text", arguments)[1].batch_size == 8
    assert finish_all("--config", second, "--venvs", stub_venvs, state=state)[0] == 0
    assert run_records(output)[2]["run_config"] == second.name  # unchanged: the run config is reused


@pytest.mark.parametrize("tables, trailers", [
    ('[audio]\n[video]\n', True),
    ('[audio]\nlimit = 5\n[video]\n', False),  # audio's folders would miss the ids it did not run
    ('[audio]\n[video]\nlimit = 5\n', False),
    ('[audio]\n[video]\ntrailers = "other.tsv"\n', False),  # two trailer files: neither covers both
])
def test_verify_gets_the_trailers_only_where_audio_and_video_both_read_them_whole(tmp_path, stub_venvs, tables,
                                                                                  trailers):
    state, config = tmp_path / "state", tmp_path / "all.toml"
    config.write_text('output = "out"\n' + tables)
    code, stdout, stderr = finish_all("--config", config, "--venvs", stub_venvs, state=state)
    assert code == 0, stdout + stderr
    for script in ("verify", "report"):
        arguments = json.loads((state / f"{script}.argv").read_text())
        assert ("--trailers" in arguments) == trailers and "--plots" not in arguments, arguments


def test_output_that_is_not_utf8_is_passed_on_and_a_full_pipe_never_stalls_the_run(tmp_path, stub_venvs):
    code, stdout, stderr = finish_all("--config", stub_config(tmp_path), "--venvs", stub_venvs,
                                      state=tmp_path / "state", bad_bytes=True)
    assert code == 0, stderr
    assert "[text] \ufffd\ufffd not utf-8" in stdout and stdout.count("[text] filler") == 40000


def test_progress_json_that_cannot_be_written_is_one_warning_and_the_run_goes_on(tmp_path, stub_venvs):
    (tmp_path / "out" / "progress.json").mkdir(parents=True)  # a rename onto it fails, as on a full disk
    code, stdout, stderr = finish_all("--config", stub_config(tmp_path), "--venvs", stub_venvs,
                                      state=tmp_path / "state")
    assert code == 0, stderr
    assert stderr.count("extract_all: warning: cannot write") == 1 and "extract_all: OK" in stdout
    assert (tmp_path / "state" / "report.argv").exists()


def test_a_venv_python_that_cannot_run_fails_its_step_in_one_line(tmp_path, stub_venvs):
    (stub_venvs / "image" / "bin" / "python").chmod(0o644)
    code, stdout, stderr = finish_all("--config", stub_config(tmp_path), "--parallel", "--venvs", stub_venvs,
                                      state=tmp_path / "state")
    assert code == 1 and "Traceback" not in stderr, stderr
    assert "[image] error: " in stderr and "cannot be run: Permission denied" in stderr
    assert "extract_all: text finished" in stdout and "extract_all: image failed (exit 2" in stdout
    assert run_records(tmp_path / "out")[0]["outcome"] == "failed"


def test_an_error_of_extract_all_itself_stops_and_waits_for_the_running_children(tmp_path, stub_venvs,
                                                                                  monkeypatch):
    started, real_popen = [], subprocess.Popen

    def popen(command: list[str], **options: object) -> subprocess.Popen:
        if "extract_images.py" in command[1]:
            raise RuntimeError("an error of extract_all's own")
        started.append(real_popen(command, **options))
        return started[-1]

    monkeypatch.setenv("STUB_STATE", str(tmp_path / "state"))
    monkeypatch.setattr(extract_all.subprocess, "Popen", popen)
    try:
        with pytest.raises(RuntimeError):
            extract_all.main(["--config", str(stub_config(tmp_path)), "--parallel", "--venvs", str(stub_venvs)])
        assert [process.poll() for process in started] in ([143], [-signal.SIGTERM])  # text: stopped, waited for
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
