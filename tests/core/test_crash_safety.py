"""Guarantees 1 and 2 (docs/guarantees.md): killed runs, full disks and read-only folders lose nothing.

SIGKILL lands at random points of real runs of every extractor; a full disk is a real
tiny tmpfs and a read-only folder a real read-only bind mount (both in a private
mount namespace made with `unshare`, so the test needs no privileges of its own).
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from m3l.store.writer import OutputError, atomic_write_bytes
from tests.core.extractors import (EXTRACTORS, TEXT, arguments, assert_same_vectors, finish, in_private_mounts,
                                   json_files, make_catalogue, run, signal_group, snapshot, start, temporary_files,
                                   wait_for)
from tests.testlib import REPO, SRC, is_run_record

KILLS = {"text": 5}  # the store is shared: other extractors are killed at start-up, once mid-run and at the end


@pytest.mark.parametrize("extractor", EXTRACTORS, ids=str)
def test_sigkill_at_random_points_then_resume_gives_the_clean_result(extractor, tmp_path, extractor_store, clean_run):
    catalogue, clean = clean_run(extractor)
    output = tmp_path / "output"
    args = arguments(extractor, catalogue, extractor_store(extractor), output)
    total = extractor.items * len(extractor.folders)
    rng = random.Random(7)
    kills, count = [], KILLS.get(extractor.modality, 3)
    for point in range(count):
        process = start(extractor, args)
        written = len(json_files(output, extractor.folders))
        if point == 0:  # during start-up, before any file
            time.sleep(rng.uniform(0.5, 2.0))
        elif point == count - 1:  # when the last vector is written: consolidation or just before it
            wait_for(lambda: len(json_files(output, extractor.folders)) >= total, process)
        else:  # while vectors are being written
            target = written + rng.randint(1, max(1, (total - written) // 3))
            wait_for(lambda: len(json_files(output, extractor.folders)) >= target, process)
            time.sleep(rng.uniform(0, 0.3))
        signal_group(process, signal.SIGKILL)
        code, _, stderr = finish(process)
        kills.append((code, len(json_files(output, extractor.folders))))
        snapshot(output, extractor)  # every JSON and consolidated file present is complete and parses
    assert sum(code == -signal.SIGKILL for code, _ in kills) >= count - 1, kills  # they really were killed
    code, stdout, stderr = run(extractor, args)
    assert code == 0, stderr
    assert temporary_files(output) == []
    assert_same_vectors(snapshot(output, extractor), snapshot(clean, extractor))
    files = {path.relative_to(output) for path in output.rglob("*") if not _per_run(path.name)}
    assert files == {path.relative_to(clean) for path in clean.rglob("*") if not _per_run(path.name)}


def _per_run(name: str) -> bool:
    """Logs and run records: they differ between any two runs."""
    return name.startswith("log_") or is_run_record(name)


def test_kill_while_consolidating_keeps_the_previous_tables(tmp_path, extractor_store):
    """SIGKILL while the new Parquet file is half written: the old one stays whole, the next run cleans up."""
    catalogue = make_catalogue(TEXT, tmp_path / "input", count=12)
    output = tmp_path / "output"
    args = arguments(TEXT, catalogue, extractor_store(TEXT), output)
    assert run(TEXT, [*args, "--limit", "6"])[0] == 0
    before = {path.name: path.read_bytes() for path in output.glob("text_embeddings_*")}
    # Pause inside pyarrow's write, after part of the file is out, and die there.
    ready = tmp_path / "ready"
    process = subprocess.Popen([str(TEXT.python), "-m", "tests.core.hang_in_parquet_write", str(ready), *args],
                               cwd=REPO, env={**os.environ, "PYTHONPATH": str(SRC), "M3L_OFFLINE": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    assert wait_for(ready.exists, process), process.communicate()[1]
    signal_group(process, signal.SIGKILL)
    process.wait()
    assert [path.name for path in temporary_files(output)] != []
    assert {path.name: path.read_bytes() for path in output.glob("text_embeddings_*")} == before
    code, _, stderr = run(TEXT, args)
    assert code == 0, stderr
    assert temporary_files(output) == []
    assert len(snapshot(output, TEXT)["minilm.parquet"]) == 12


def test_failed_write_removes_its_temporary_file_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "1.json"
    target.write_bytes(b'{"1": [0.5]}')

    def disk_full(source, destination):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OutputError, match=f"cannot write {target}: No space left on device"):
        atomic_write_bytes(target, b'{"1": [1.5]}')
    assert target.read_bytes() == b'{"1": [0.5]}'
    assert list(tmp_path.iterdir()) == [target]


def _script_command(args: list[str]) -> str:
    return " ".join(f"'{part}'" for part in [str(TEXT.python), str(SRC / TEXT.script), *args])


def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def _assert_one_line_error(stderr: str, *fragments: str) -> None:
    lines = [line for line in stderr.splitlines() if not line.startswith("Loading weights")]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert all(fragment in errors[0] for fragment in fragments), errors[0]


@pytest.fixture(scope="module")
def five_done(tmp_path_factory, extractor_store):
    """(a 40-plot catalogue, an output folder where its first 5 plots are done and consolidated)."""
    folder = tmp_path_factory.mktemp("five-done")
    catalogue = make_catalogue(TEXT, folder / "input", count=40)
    assert run(TEXT, [*arguments(TEXT, catalogue, extractor_store(TEXT), folder / "output"), "--limit", "5"])[0] == 0
    return catalogue, folder / "output"


@pytest.fixture
def partial_output(tmp_path, five_done, extractor_store):
    """(arguments of the 40-plot run, a fresh copy of the output folder where 5 plots are done)."""
    catalogue, seed = five_done
    shutil.copytree(seed, tmp_path / "output")
    return arguments(TEXT, catalogue, extractor_store(TEXT), tmp_path / "output"), tmp_path / "output"


def _on_a_small_tmpfs(tmp_path: Path, seed: Path, room_kib: int, command: Callable[[Path], str]
                      ) -> tuple[subprocess.CompletedProcess, Path]:
    """`command(mounted)` on a tmpfs holding a copy of `seed` and `room_kib` more; the result, and a copy of
    what the tmpfs held afterwards."""
    used_kib = sum(-(-len(data) // 4096) * 4 for data in _files(seed).values())
    mounted, copied_back = tmp_path / "tmpfs", tmp_path / "after"
    mounted.mkdir()
    copied_back.mkdir()
    result = in_private_mounts(
        f"mount -t tmpfs -o size={used_kib + room_kib}k tmpfs '{mounted}' && cp -a '{seed}/.' '{mounted}/' && "
        f"{command(mounted)}; code=$?; cp -a '{mounted}/.' '{copied_back}/'; exit $code")
    return result, copied_back


def _output_on(args: list[str], output: Path) -> list[str]:
    return [*args[:args.index("--output") + 1], str(output), *args[args.index("--output") + 2:]]


def _assert_same_outputs(before: dict[str, bytes], after: dict[str, bytes]) -> None:
    """The files before are there unchanged (logs, run records and locks may have changed)."""
    kept = [name for name in before if not _per_run(name) and not name.startswith(".")]
    assert {name: after.get(name) for name in kept} == {name: before[name] for name in kept}


def test_disk_full_stops_with_one_line_and_damages_nothing(tmp_path, partial_output):
    args, seed = partial_output
    before = _files(seed)
    result, copied_back = _on_a_small_tmpfs(tmp_path, seed, 48,
                                            lambda mounted: _script_command(_output_on(args, mounted)))
    assert result.returncode == 2, result.stderr
    _assert_one_line_error(result.stderr, "cannot write", "No space left on device", "files already written are intact")
    assert "minilm: " in result.stdout and " done, 5 already done" in result.stdout  # the summary still printed
    _assert_same_outputs(before, _files(copied_back))
    assert temporary_files(copied_back) == []
    vectors = snapshot(copied_back, TEXT)["minilm"]
    assert 5 < len(vectors) < 40  # it wrote until the disk was full


@pytest.fixture(scope="module")
def forty_unconsolidated(tmp_path_factory, five_done, extractor_store):
    """(arguments of the 40-plot run, an output folder where all 40 are done, the tables holding the first 5)."""
    catalogue, seed = five_done
    output = tmp_path_factory.mktemp("forty") / "output"
    shutil.copytree(seed, output)
    args = arguments(TEXT, catalogue, extractor_store(TEXT), output)
    assert run(TEXT, [*args, "--no-consolidate"])[0] == 0
    return args, output


@pytest.mark.parametrize("consolidation", ["consolidate.py", "after a run"])
def test_disk_full_while_consolidating_is_one_line_and_keeps_the_previous_tables(tmp_path, forty_unconsolidated,
                                                                                 consolidation):
    """Room for the JSON files, not for the tables: HDF5 failed at close and the interpreter crashed (exit 139)."""
    args, seed = forty_unconsolidated
    before = _files(seed)

    def command(mounted: Path) -> str:
        if consolidation == "consolidate.py":
            return " ".join(f"'{part}'" for part in [TEXT.python, SRC / "consolidate.py", "--output", mounted])
        return _script_command(_output_on(args, mounted))

    result, copied_back = _on_a_small_tmpfs(tmp_path, seed, 32, command)
    assert result.returncode == 2, result.stderr
    _assert_one_line_error(result.stderr, "no room for the consolidated tables of minilm", "previous tables are intact")
    _assert_same_outputs(before, _files(copied_back))
    assert temporary_files(copied_back) == []


@pytest.mark.parametrize("read_only", ["output", "output/minilm"])
def test_read_only_output_stops_with_one_line_and_changes_nothing(partial_output, read_only):
    args, output = partial_output
    before = _files(output)
    folder = output.parent / read_only
    result = in_private_mounts(f"mount --bind '{folder}' '{folder}' && mount -o remount,bind,ro '{folder}' && "
                                f"{_script_command(args)}")
    assert result.returncode == 2, result.stderr
    _assert_one_line_error(result.stderr, "Read-only file system")
    after = _files(output)
    changed = {name for name, data in after.items() if before.get(name) != data}
    if read_only == "output":
        assert changed == set()
    else:  # only outside the read-only folder: the log, the lock, and the run's record with its outcome
        assert {name for name in changed if not is_run_record(name)} <= {"log_minilm.txt", ".minilm.lock"}
        outcome = json.loads(after["runs.jsonl"].splitlines()[-1])["outcome"]
        assert outcome.startswith("error: ") and "Read-only file system" in outcome
    assert temporary_files(output) == []


@pytest.mark.parametrize("planted", [".minilm.lock", "log_minilm.txt", "minilm"])
def test_a_symbolic_link_in_the_output_folder_is_refused_not_followed(tmp_path, extractor_store, planted):
    """Names under the output folder are not trusted: a link there must not make the run write where it points."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    output = tmp_path / "output"
    output.mkdir()
    (output / planted).symlink_to(victim if planted == "minilm" else victim / "precious.txt")
    catalogue = make_catalogue(TEXT, tmp_path / "input", count=3)
    code, _, stderr = run(TEXT, arguments(TEXT, catalogue, extractor_store(TEXT), output))
    assert code == 2
    _assert_one_line_error(stderr, f"{output / planted} is a symbolic link: refusing to write through it")
    assert _files(victim) == {"precious.txt": b"keep me"}


def test_a_disk_full_before_the_run_starts_is_one_line(tmp_path, extractor_store):
    mounted = tmp_path / "tmpfs"
    mounted.mkdir()
    catalogue = make_catalogue(TEXT, tmp_path / "input", count=3)
    args = arguments(TEXT, catalogue, extractor_store(TEXT), mounted / "output")
    result = in_private_mounts(f"mount -t tmpfs -o size=64k tmpfs '{mounted}' && "
                                f"(dd if=/dev/zero of='{mounted}/filler' bs=4k 2>/dev/null; true) && "
                                f"{_script_command(args)}")
    assert result.returncode == 2, result.stderr
    _assert_one_line_error(result.stderr, "cannot write", "No space left on device")
