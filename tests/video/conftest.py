"""Video fixtures: a random-weight model store in the publishers' exact formats, test trailers, and
extract_video.py's run over two of them (shared by the parity and run tests).

The three architectures are fixed by their checkpoints, so the store holds the full
models (random weights; BatchNorm randomised so that every block counts).
A clip costs seconds on two cores: tests keep the number of clips small.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tests.testlib import bigbuckbunny, write_map
from tests.video.helpers import run_ok
from tests.video.media import corrupt_packet, remux_head, truncate, write_audio_only, write_video
from tests.video.reference import BUILDERS, STORE_PATHS, ReferenceModel


def _randomise_batchnorm(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """BatchNorm scales near 1, small shifts and statistics.

    The default initialisation (zeroed last BatchNorm of each residual branch) leaves a
    deep network nearly blind to its input; scales in [0.7, 1.0] keep features of order 1
    that differ by about 10-30 % between two trailers, so a wrong frame or transform shows.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.weight.data = 0.7 + 0.3 * torch.rand(n, generator=generator)
            module.bias.data = 0.02 * torch.randn(n, generator=generator)
            module.running_mean = 0.02 * torch.randn(n, generator=generator)
            module.running_var = 0.9 + 0.2 * torch.rand(n, generator=generator)
    return model


def save_random_model(store: Path, name: str, seed: int = 0) -> Path:
    """A random `name` saved as its publisher ships it: PyTorchVideo checkpoints hold the
    weights under `model_state`; the IG-65M release is a bare state dict."""
    torch.manual_seed(seed)
    model = _randomise_batchnorm(BUILDERS[name](), torch.Generator().manual_seed(seed))
    path = store / STORE_PATHS[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    torch.save(state if name == "r2p1d" else {"epoch": 196, "model_state": state, "cfg": "MODEL:\n  ARCH: random\n"}, path)
    return path


def add_r2p1d(store: Path) -> Path:
    """The cheapest of the video models, for the guarantee tests' runs."""
    return save_random_model(store, "r2p1d")


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
    B-frame trailer starting at 1.5 s; --batch-size 2 puts both trailers' clips in one forward pass."""
    folder = tmp_path_factory.mktemp("combined")
    catalogue = write_map(folder / "trailers.tsv", [("1", trailers["bbb_head"]), ("2", trailers["vfr"])])
    result = run_ok("extract_video.py", "--trailers", catalogue, "--models-dir", video_store,
                    "--output", folder / "out", "--batch-size", 2)
    return folder / "out", result
