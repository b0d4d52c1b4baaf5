"""Audio fixtures: the random-weight model store (tests/audio/stores.py) and generated test soundtracks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audio.media import write_audio
from tests.audio.stores import add_ast, add_vggish, add_whisper
from tests.stores import model_store


@pytest.fixture(scope="session")
def audio_store(tmp_path_factory) -> Path:
    return model_store(tmp_path_factory.mktemp("models"), add_whisper, add_ast, add_vggish)


@pytest.fixture(scope="session")
def sounds(tmp_path_factory) -> dict[str, Path]:
    """One short file per kind of input docs/audio.md lists (containers, codecs, channel layouts), plus a
    35 s one past the 30 s cut."""
    folder = tmp_path_factory.mktemp("sounds")
    specs = {
        "opus.mkv": dict(seconds=3.0, rate=48000),
        "vorbis.webm": dict(seconds=2.5, rate=44100, seed=1),
        "lame.mp3": dict(seconds=2.0, rate=44100, seed=2),
        "long8k.wav": dict(seconds=35.0, rate=8000, layout="mono", seed=3),
        "surround.flac": dict(seconds=2.0, rate=48000, layout="5.1", seed=4),
    }
    return {name: write_audio(folder / name, **spec) for name, spec in specs.items()}

