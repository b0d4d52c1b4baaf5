"""Model store: downloads from a hub of our own (tests.hub) through HF_ENDPOINT, a mirror and a proxy;
only the allowed files, manifests, resuming, locking, one-line failures, offline flags, --check."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from m3l import models
from m3l.errors import UserError
from m3l.model_store import ModelStore, StoreEntry, digest_of, file_table, offline
from tests.hub import Hub, read_folder
from tests.outputs import read_vectors
from tests.stores import add_clip
from tests.testlib import SRC, run_script

CLIP = "sentence-transformers/clip-ViT-B-32"
# Published beside the files the model table allows: copies no loader reads.
UNUSED = {"tf_model.h5": b"tf" * 50, "onnx/model.onnx": b"onnx" * 50, "0_CLIPModel/flax_model.msgpack": b"f" * 99,
          "README.md": b"# clip"}
WEIGHTS = "0_CLIPModel/model.safetensors"
# The published folder's second weight format: allowed, and past huggingface_hub's 10 MiB download chunk so a
# cut halfway leaves whole chunks to resume after.
BIN = "0_CLIPModel/pytorch_model.bin"
VGG_URL = "https://download.pytorch.org/models/vgg16-{}.pth"


@pytest.fixture(scope="module")
def clip_repo(tmp_path_factory) -> dict[str, bytes]:
    """The tiny CLIP folder as a hub repository, its tokenizer config without model_max_length."""
    folder = add_clip(tmp_path_factory.mktemp("published"), model_max_length=None)
    return {**read_folder(folder), **UNUSED, BIN: bytes(range(256)) * (84 * 1024)}


@pytest.fixture
def hub(clip_repo):
    with Hub() as server:
        server.repos[CLIP] = dict(clip_repo)
        yield server


def online_env(tmp_path, hub: Hub, **extra: str) -> dict[str, str]:
    return {"M3L_OFFLINE": "0", "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"),
            "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2", "NO_PROXY": "127.0.0.1", **extra}


def download(store, env, *args: str) -> subprocess.CompletedProcess:
    return run_script("download_models.py", "--modality", "text", "--models", "clip-text", "--models-dir", store,
                      *args, env=env, timeout=120)


def assert_one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- a hub download through HF_ENDPOINT, cut once halfway, then used by extract_text.py ---------------------


@pytest.fixture(scope="module")
def downloaded(clip_repo, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("download")
    with Hub() as server:
        server.repos[CLIP] = dict(clip_repo)
        server.cut_once = {f"/{CLIP}/resolve/{server.commit(CLIP)}/{BIN}"}
        killed = tmp / "models" / "sentence-transformers"  # what killed attempts left: its staging, an old temporary
        (killed / ".clip-ViT-B-32.partial" / "0_CLIPModel").mkdir(parents=True)
        (killed / ".clip-ViT-B-32.partial" / "0_CLIPModel" / "stale.bin").write_bytes(b"from an older attempt")
        (killed / ".clip-ViT-B-32.x7k2").mkdir()
        result = download(tmp / "models", online_env(tmp, server))
    assert result.returncode == 0, result.stderr
    return tmp / "models", server


def test_only_the_allowed_files_arrive(downloaded, clip_repo):
    store, hub = downloaded
    folder = store / CLIP
    arrived = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert arrived == set(clip_repo) - set(UNUSED)
    assert not any(path.endswith(tuple(UNUSED)) for _, path, _ in hub.requests)
    assert sorted(p.name for p in (store / "sentence-transformers").iterdir()) == [
        "clip-ViT-B-32", "clip-ViT-B-32.MANIFEST.json"]  # no staging or cache left behind


def test_manifest_names_source_commit_sizes_and_hashes(downloaded, clip_repo):
    store, hub = downloaded
    manifest = json.loads((store / f"{CLIP}.MANIFEST.json").read_text())
    assert manifest["repo_id"] == CLIP and manifest["revision"] == "main"
    assert manifest["commit"] == hub.commit(CLIP) and manifest["fetched_from"] == hub.url
    expected = {name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                for name, data in clip_repo.items() if name not in UNUSED}
    assert manifest["files"] == expected


def test_a_cut_connection_resumes_with_a_range_request(downloaded):
    from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE

    store, hub = downloaded
    assert hub.gets(BIN) == [None, f"bytes={DOWNLOAD_CHUNK_SIZE}-"]


def test_extract_text_runs_on_what_arrived_and_clip_reads_77_tokens(downloaded, tmp_path):
    store, _ = downloaded
    plots = tmp_path / "plots.tsv"
    plots.write_text("movie_id\tplot\n1\ta short plot\n2\t" + " ".join(["the river dried"] * 300) + "\n")
    result = run_script("extract_text.py", "--plots", plots, "--models", "clip-text", "--models-dir", store,
                        "--output", tmp_path / "out", "--no-consolidate")
    assert result.returncode == 0, result.stderr
    vectors = read_vectors(tmp_path / "out" / "clip-text")
    assert set(vectors) == {"1", "2"}  # the 900-word plot needs the 77-token guard: the tokenizer config names no limit
    assert all(np.isfinite(vector).all() and vector.shape == (512,) for vector in vectors.values())


def test_check_passes_then_names_a_changed_file(downloaded, tmp_path):
    store, _ = downloaded
    result = download(store, {}, "--check")
    assert result.returncode == 0 and "1 entries checked" in result.stdout, result.stderr
    copy = tmp_path / "models"
    subprocess.run(["cp", "-r", str(store), str(copy)], check=True)
    weights = copy / CLIP / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    (copy / CLIP / "extra.bin").write_bytes(b"x")
    result = download(copy, {}, "--check")
    assert_one_error_line(result)
    assert sorted(line.split(": ")[0] for line in result.stdout.splitlines()) == [str(weights), str(copy / CLIP / "extra.bin")]


def test_model_table_pins_revision_and_patterns_for_every_hub_entry():
    hub_entries = [entry for info in models.MODELS.values() for entry in info.files if entry.repo_id]
    assert hub_entries and all(entry.revision and entry.allow_patterns for entry in hub_entries)


# --- failures: one line, exit 2, nothing half-written ---------------------------------------------------------


def test_two_first_runs_download_once_and_both_succeed(hub, tmp_path):
    hub.delay = 0.2
    env = {**os.environ, **online_env(tmp_path, hub)}
    command = [sys.executable, str(SRC / "download_models.py"), "--modality", "text", "--models", "clip-text",
               "--models-dir", str(tmp_path / "models")]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert len(hub.gets(WEIGHTS)) == 1


@pytest.mark.parametrize("fault", ["status 500", "hang", "hang on the file listing"])
def test_a_failing_hub_is_one_error_line(hub, tmp_path, fault):
    if fault == "hang":
        hub.hang = True
    elif fault == "hang on the file listing":
        hub.hang_listing = True
    else:
        hub.fail_status = 500
    started = time.monotonic()
    result = download(tmp_path / "models", online_env(tmp_path, hub, HF_HUB_ETAG_TIMEOUT="1",
                                                      HF_HUB_DOWNLOAD_TIMEOUT="1"))
    seconds = time.monotonic() - started
    assert "Traceback" not in result.stderr
    if fault == "hang on the file listing":  # huggingface_hub tries it 6 times, 1-8 s apart, and says so
        retries = [line for line in result.stderr.splitlines() if "thrown while requesting" in line]
        assert len(retries) == 6 and seconds < 50, (seconds, result.stderr)  # the hub would hang for 60 s
        result.stderr = "".join(line for line in result.stderr.splitlines(keepends=True)
                                if "thrown while requesting" not in line and not line.startswith("Retrying in"))
    else:
        assert seconds < 30
    assert CLIP in assert_one_error_line(result)
    assert not (tmp_path / "models" / CLIP).exists()


@pytest.mark.parametrize("answer", [b"[]", b"null", b'{"id": "x", "siblings": []}', b'{"id": "x", "sha": 5}'])
def test_a_repo_info_of_the_wrong_shape_is_one_error_line(hub, tmp_path, answer):
    hub.revision_answer = answer
    line = assert_one_error_line(download(tmp_path / "models", online_env(tmp_path, hub)))
    assert f"{CLIP}@main" in line and "named no commit" in line
    assert not (tmp_path / "models" / CLIP).exists()


def test_the_hub_is_reached_through_the_proxy_the_environment_names(hub, tmp_path):
    env = online_env(tmp_path, hub, HF_ENDPOINT="http://hub.internal", HTTP_PROXY=hub.url, NO_PROXY="")
    result = download(tmp_path / "models", env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "models" / CLIP / WEIGHTS).read_bytes() == hub.repos[CLIP][WEIGHTS]
    assert set(hub.proxied_hosts) == {"hub.internal"}


# --- plain URL files: M3L_DOWNLOAD_MIRROR, Range resume, leftovers, hashes, proxies ---------------------------


def vgg_file(hub: Hub, payload: bytes = bytes(range(256)) * 400) -> tuple[StoreEntry, bytes]:
    digest = hashlib.sha256(payload).hexdigest()[:8]
    url = VGG_URL.format(digest)
    hub.mirror[url.removeprefix("https://")] = payload
    return StoreEntry(f"torchvision/vgg16-{digest}.pth", url=url), payload


@pytest.fixture
def online(monkeypatch):
    monkeypatch.setenv("M3L_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "2")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


def test_mirror_download_resumes_a_cut_connection_and_writes_a_manifest(hub, tmp_path, monkeypatch, online):
    monkeypatch.setenv("M3L_DOWNLOAD_MIRROR", hub.url + "/mirror/")
    entry, payload = vgg_file(hub)
    hub.cut_once = {f"/mirror/download.pytorch.org/models/{entry.path.split('/')[1]}"}
    store = ModelStore(tmp_path)
    [path] = store.require((entry,), "fill it")
    assert path.read_bytes() == payload
    assert hub.gets(".pth") == [None, f"bytes={len(payload) // 2}-"]
    manifest = store.manifest(entry)
    assert manifest["source"] == entry.url and manifest["fetched_from"].startswith(hub.url + "/mirror/download.")
    assert manifest["files"] == {path.name: {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}}


def vgg_entry_folder(hub, tmp_path, monkeypatch):
    """A store on the mirror, the vgg file's entry and payload, and its place, whose folder exists."""
    monkeypatch.setenv("M3L_DOWNLOAD_MIRROR", hub.url + "/mirror")
    entry, payload = vgg_file(hub)
    store = ModelStore(tmp_path)
    target = store.path(entry)
    target.parent.mkdir(parents=True)
    return store, entry, payload, target


def test_a_killed_download_resumes_and_its_leftovers_go(hub, tmp_path, monkeypatch, online):
    store, entry, payload, target = vgg_entry_folder(hub, tmp_path, monkeypatch)
    (target.parent / f".{target.name}.partial").write_bytes(payload[:1000])
    (target.parent / f".{target.name}.x7k2").mkdir()  # an older temporary
    store.require((entry,), "fill it")
    assert target.read_bytes() == payload and hub.gets(".pth") == ["bytes=1000-"]
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name, target.name + ".MANIFEST.json"]


def test_a_download_leaves_the_staging_of_an_entry_named_longer_alone(hub, tmp_path, monkeypatch, online):
    store, entry, _, target = vgg_entry_folder(hub, tmp_path, monkeypatch)
    theirs = [f".{target.name}.v2.partial", f".{target.name}.v2.MANIFEST.json.x7k2.tmp"]  # `<name>.v2`'s download
    for name in theirs:
        (target.parent / name).write_bytes(b"in flight")
    (target.parent / f".{target.name}.MANIFEST.json.x7k2.tmp").write_bytes(b"{")  # this entry's own leftover
    store.require((entry,), "fill it")
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([target.name, target.name + ".MANIFEST.json",
                                                                     *theirs])


def test_a_file_with_the_wrong_hash_is_one_error_and_leaves_nothing(hub, tmp_path, monkeypatch, online):
    monkeypatch.setenv("M3L_DOWNLOAD_MIRROR", hub.url + "/mirror")
    entry, _ = vgg_file(hub)
    hub.mirror[entry.url.removeprefix("https://")] = b"tampered"
    with pytest.raises(UserError, match="does not match the hash"):
        ModelStore(tmp_path).require((entry,), "fill it")
    assert list((tmp_path / "torchvision").iterdir()) == []


def test_a_url_server_error_is_one_error(hub, tmp_path, monkeypatch, online):
    monkeypatch.setenv("M3L_DOWNLOAD_MIRROR", hub.url + "/mirror")
    entry, _ = vgg_file(hub)
    hub.fail_status = 500
    with pytest.raises(UserError, match="500"):
        ModelStore(tmp_path).require((entry,), "fill it")


def test_a_server_that_trickles_bytes_fails_by_the_minimum_rate(hub, tmp_path, monkeypatch, online):
    monkeypatch.setenv("M3L_DOWNLOAD_MIRROR", hub.url + "/mirror")
    monkeypatch.setenv("M3L_DOWNLOAD_MIN_RATE", "100")
    monkeypatch.setenv("M3L_DOWNLOAD_RATE_WINDOW", "1")
    entry, payload = vgg_file(hub, b"x" * 60)
    hub.trickle = 0.25  # each byte well within the 2 s wait for the server: only the rate catches it
    with pytest.raises(UserError, match="stalled: .* below M3L_DOWNLOAD_MIN_RATE=100 bytes/s"):
        ModelStore(tmp_path).require((entry,), "fill it")
    assert not ModelStore(tmp_path).path(entry).exists()


def test_a_hub_that_trickles_bytes_fails_by_the_minimum_rate(hub, tmp_path):
    hub.trickle = 0.25
    env = online_env(tmp_path, hub, M3L_DOWNLOAD_MIN_RATE="100", M3L_DOWNLOAD_RATE_WINDOW="1")
    result = download(tmp_path / "models", env)
    result.stderr = "".join(line for line in result.stderr.splitlines(keepends=True)
                            if not line.startswith("Fetching"))  # huggingface_hub's progress bar
    line = assert_one_error_line(result)
    assert "stalled: " in line and "below M3L_DOWNLOAD_MIN_RATE=100 bytes/s" in line
    assert not (tmp_path / "models" / CLIP).exists()


@pytest.mark.parametrize("variable", ["HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_ETAG_TIMEOUT", "M3L_DOWNLOAD_MIN_RATE"])
def test_a_setting_that_is_no_whole_number_is_blamed_before_any_model_loads(minilm_store, tmp_path, monkeypatch,
                                                                             capsys, variable):
    from m3l.cli import main

    monkeypatch.setenv(variable, "2.5")
    plots = tmp_path / "plots.tsv"
    plots.write_text("movie_id\tplot\n1\ta plot\n")
    assert main("text", ["--plots", str(plots), "--models", "minilm", "--models-dir", str(minilm_store),
                         "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {variable}='2.5' is not a whole number") and err.count("\n") == 1


def test_downloads_go_through_the_proxy_the_environment_names(hub, tmp_path, monkeypatch, online):
    entry, payload = vgg_file(hub)
    monkeypatch.setenv("M3L_DOWNLOAD_MIRROR", "http://mirror.internal/mirror")
    monkeypatch.setenv("HTTP_PROXY", hub.url)
    monkeypatch.setenv("NO_PROXY", "")
    [path] = ModelStore(tmp_path).require((entry,), "fill it")
    assert path.read_bytes() == payload and hub.proxied_hosts == ["mirror.internal"]


# --- offline flags, parsed as huggingface_hub parses them -----------------------------------------------------


@pytest.mark.parametrize("flags, expected", [
    ({"HF_HUB_OFFLINE": "1"}, True), ({"HF_HUB_OFFLINE": "ON"}, True), ({"HF_HUB_OFFLINE": "yes"}, True),
    ({"HF_HUB_OFFLINE": "true"}, True), ({"HF_HUB_OFFLINE": "0"}, False), ({"HF_HUB_OFFLINE": "false"}, False),
    ({"TRANSFORMERS_OFFLINE": "1"}, True), ({"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"}, False),
    ({"M3L_OFFLINE": "1"}, True), ({}, False),
])
def test_offline_flags(monkeypatch, flags, expected):
    for name in ("M3L_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in flags.items():
        monkeypatch.setenv(name, value)
    assert offline() is expected


def test_offline_never_touches_the_network_and_names_the_fill_command(hub, tmp_path, monkeypatch, online):
    monkeypatch.setenv("M3L_DOWNLOAD_MIRROR", hub.url + "/mirror")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    entry, _ = vgg_file(hub)
    with pytest.raises(UserError) as error:
        ModelStore(tmp_path).require((entry,), "python src/download_models.py --modality image")
    assert str(tmp_path / entry.path) in str(error.value)
    assert "python src/download_models.py --modality image" in str(error.value)
    assert hub.requests == []


def test_present_entries_are_used_without_any_network(tmp_path, monkeypatch):
    monkeypatch.setenv("M3L_OFFLINE", "1")
    (tmp_path / "openai" / "whisper-base").mkdir(parents=True)
    entry = StoreEntry("openai/whisper-base", repo_id="openai/whisper-base")
    assert ModelStore(tmp_path).require((entry,), "fill it") == [tmp_path / "openai" / "whisper-base"]


def test_a_fifo_in_place_of_a_model_file_is_one_error_not_a_wait(tmp_path):
    """torch.load waited forever on a FIFO planted at torchvggish/vggish-10086976.pth."""
    single, folder = StoreEntry("torchvggish/vggish-10086976.pth", url="https://x/v.pth"), StoreEntry("org/model")
    (tmp_path / "torchvggish").mkdir()
    os.mkfifo(tmp_path / single.path)
    (tmp_path / folder.path).mkdir(parents=True)
    (tmp_path / folder.path / "config.json").write_text("{}")
    os.mkfifo(tmp_path / folder.path / "model.safetensors")
    for entry, planted in ((single, single.path), (folder, f"{folder.path}/model.safetensors")):
        with pytest.raises(UserError, match=f"model store file {tmp_path / planted} is a FIFO"):
            ModelStore(tmp_path).require((entry,), "fill it")
    (tmp_path / folder.path / "model.safetensors").unlink()
    (tmp_path / folder.path / "model.safetensors").symlink_to(tmp_path / folder.path / "config.json")
    assert ModelStore(tmp_path).require((folder,), "fill it") == [tmp_path / folder.path]  # links are followed


def test_an_entry_copied_in_by_hand_is_hashed_without_writing_to_the_store(tmp_path):
    entry = StoreEntry("openai/whisper-base", repo_id="openai/whisper-base")
    folder = tmp_path / entry.path
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "weights.bin").write_bytes(b"w" * 100)
    store = ModelStore(tmp_path)
    digest = store.digest(entry)
    assert digest == digest_of({"config.json": {"sha256": hashlib.sha256(b"{}").hexdigest()},
                                "sub/weights.bin": {"sha256": hashlib.sha256(b"w" * 100).hexdigest()}})
    assert store.manifest(entry) is None and sorted(p.name for p in tmp_path.iterdir()) == ["openai"]
    assert store.check(entry) == [f"{folder}: no manifest ({entry.path.split('/')[-1]}.MANIFEST.json); "
                                  "its files cannot be checked"]
    (folder / "sub" / "weights.bin").write_bytes(b"v" * 100)
    assert store.digest(entry) != digest  # without a manifest, the files themselves name the entry


@pytest.mark.parametrize("content", ["{", "[]", '{"source": null}', '{"files": {"a": 1}}'])
def test_a_damaged_manifest_is_one_clear_error(tmp_path, content):
    entry = StoreEntry("openai/whisper-base", repo_id="openai/whisper-base")
    (tmp_path / entry.path).mkdir(parents=True)
    (tmp_path / (entry.path + ".MANIFEST.json")).write_text(content)
    with pytest.raises(UserError, match="is not a model-store manifest"):
        ModelStore(tmp_path).digest(entry)


def test_weights_swapped_after_the_manifest_change_the_digest(tmp_path, monkeypatch, capsys):
    """The digest comes from the files, their hashes kept outside the store while size, times and inode
    hold: a file swapped after the manifest was written (same size) names another entry, with a warning."""
    monkeypatch.setenv("M3L_CACHE_DIR", str(tmp_path / "cache"))
    entry = StoreEntry("org/model", repo_id="org/model")
    folder = tmp_path / "store" / entry.path
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    weights = folder / "model.safetensors"
    weights.write_bytes(b"w" * 100)
    store = ModelStore(tmp_path / "store")
    manifest = {"source": entry.source, "files": file_table(folder)}
    store.manifest_path(entry).write_text(json.dumps(manifest))
    digest = store.digest(entry)
    assert digest == digest_of(manifest["files"]) and capsys.readouterr().err == ""
    [known] = [path for path in (tmp_path / "cache").rglob("*") if path.is_file()]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["model", "model.MANIFEST.json"]

    stamp = weights.stat()
    weights.write_bytes(b"v" * 100)  # swapped in place, same size
    os.utime(weights, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # and even the same mtime
    assert store.digest(entry) != digest
    assert "differs from its manifest" in capsys.readouterr().err

    weights.write_bytes(b"w" * 100)
    assert store.digest(entry) == digest
    hashes = json.loads(known.read_text())  # trusted while the stamp holds: a planted hash is taken
    hashes[os.path.realpath(weights)][-1] = "0" * 64
    known.write_text(json.dumps(hashes))
    assert store.digest(entry) != digest
