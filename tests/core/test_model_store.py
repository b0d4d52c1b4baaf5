"""Model store: downloads land whole under their final name, hashes in file names are checked."""

from __future__ import annotations

import hashlib

import pytest

from m3l.errors import UserError
from m3l.model_store import ModelStore, StoreEntry


def published_file(tmp_path, payload: bytes = b"weights" * 1000):
    source = tmp_path / "published.pth"
    source.write_bytes(payload)
    return source, hashlib.sha256(payload).hexdigest()[:8]


def test_download_checks_the_hash_in_the_file_name_and_renames_into_place(tmp_path):
    source, digest = published_file(tmp_path)
    store = ModelStore(tmp_path / "models")
    entry = StoreEntry(f"torchvision/vgg16-{digest}.pth", url=source.as_uri())
    [path] = store.require((entry,), "fill it")
    assert path == tmp_path / "models" / "torchvision" / f"vgg16-{digest}.pth"
    assert path.read_bytes() == source.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_download_with_the_wrong_hash_leaves_nothing_behind(tmp_path):
    source, _ = published_file(tmp_path)
    store = ModelStore(tmp_path / "models")
    entry = StoreEntry("torchvision/vgg16-00000000.pth", url=source.as_uri())
    with pytest.raises(RuntimeError, match="hash"):
        store.require((entry,), "fill it")
    assert list((tmp_path / "models" / "torchvision").iterdir()) == []


def test_present_entries_are_used_without_any_network(tmp_path, monkeypatch):
    monkeypatch.setenv("M3L_OFFLINE", "1")
    (tmp_path / "openai" / "whisper-base").mkdir(parents=True)
    entry = StoreEntry("openai/whisper-base", repo_id="openai/whisper-base")
    assert ModelStore(tmp_path).require((entry,), "fill it") == [tmp_path / "openai" / "whisper-base"]


def test_missing_entry_offline_names_the_path_and_the_fill_command(tmp_path, monkeypatch):
    monkeypatch.setenv("M3L_OFFLINE", "1")
    entry = StoreEntry("openai/whisper-base", repo_id="openai/whisper-base")
    with pytest.raises(UserError) as error:
        ModelStore(tmp_path).require((entry,), "python src/download_models.py --modality audio")
    assert str(tmp_path / "openai" / "whisper-base") in str(error.value)
    assert "python src/download_models.py --modality audio" in str(error.value)
