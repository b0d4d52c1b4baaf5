"""Video fixtures: the random-weight model store (tests/video/stores.py), test trailers, and
extract_video.py's run over two of them (shared by the parity and run tests).

A clip costs seconds on two cores: tests keep the number of clips small.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testlib import bigbuckbunny, write_map
from tests.video.helpers import run_ok
from tests.video.media import corrupt_packet, remux_head, truncate, write_audio_only, write_video
from tests.video.reference import BUILDERS, ReferenceModel
from tests.video.stores import save_random_model


@pytest.fixture(scope="session")
def video_store(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("video-store")
    for seed, name in enumerate(BUILDERS):
        save_random_model(store, name, seed)
    return store


@pytest.fixture(scope="session")
def reference_models(video_store):
    """Reference models, each loaded on first use."""
    loaded: dict[str, ReferenceModel] = {}

    def get(name: str) -> ReferenceModel:
        if name not in loaded:
            loaded[name] = ReferenceModel(name, video_store)
        return loaded[name]

    return get


@pytest.fixture(scope="session")
def trailers(tmp_path_factory) -> dict[str, Path]:
    """Generated trailers covering the recipe's cases (frame counts chosen for the windows they give)."""
    folder = tmp_path_factory.mktemp("trailers")
    vfr = [[20, 40, 70][i % 3] for i in range(40)]
    return {
        # variable frame rate, B-frames, first pts at 1.5 s: 40 frames (slowfast pads, mvit/r2p1d drop 8)
        "vfr": write_video(folder / "vfr.mp4", vfr, size=(96, 64), start_ms=1500),
        # odd size (4:4:4 allows it), Matroska: 50 frames (mvit pads its second window, r2p1d drops it)
        "odd": write_video(folder / "odd.mkv", [40] * 50, size=(101, 57), pix_fmt="yuv444p"),
        # 4 fps from 2 s: frames after 30 s are cut (113 kept of 140)
        "past30": write_video(folder / "past30.mp4", [250] * 140, start_ms=2000),
        # 360 frames: the decoder stops at frame 320
        "long": write_video(folder / "long.mp4", [33] * 360),
        # real media, first 40 packets copied
        "bbb_head": remux_head(bigbuckbunny(), folder / "bbb_head.mp4", 40),
    }


@pytest.fixture(scope="session")
def bad_trailers(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad-trailers")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "not_media.mp4").write_text("this is not a video\n" * 50)
    faststart = {"movflags": "faststart"}
    return {
        "missing": folder / "missing.mp4",
        "empty": folder / "empty.mp4",
        "not_media": folder / "not_media.mp4",
        "audio_only": write_audio_only(folder / "audio_only.m4a"),
        "too_short": write_video(folder / "too_short.mp4", [40] * 20),
        "truncated": truncate(write_video(folder / "truncated.mp4", [40] * 80, options=faststart), 0.6),
        "corrupt": corrupt_packet(write_video(folder / "corrupt.mp4", [40] * 40), 20),
    }


@pytest.fixture(scope="session")
def combined(tmp_path_factory, video_store, trailers):
    """extract_video.py on real media (Big Buck Bunny's first 40 frames) and a variable-frame-rate
    B-frame trailer starting at 1.5 s; --batch-size 2 puts both trailers' clips in one forward pass.
    Under --layout m3l, the models' folders and tables are in out/3_video_feat/, which it returns."""
    folder = tmp_path_factory.mktemp("combined")
    catalogue = write_map(folder / "trailers.tsv", [("1", trailers["bbb_head"]), ("2", trailers["vfr"])])
    result = run_ok("extract_video.py", "--trailers", catalogue, "--models-dir", video_store,
                    "--output", folder / "out", "--batch-size", 2, "--layout", "m3l")
    return folder / "out" / "3_video_feat", result
