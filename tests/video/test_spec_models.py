"""Model specs on trailers: hf-video: (VideoMAE) against the plain reference, through the shared decode."""

from __future__ import annotations

import numpy as np
import pytest
from torchvision import transforms as T

from m3l.media.video import decode
from tests.spec_models import spec_encoder
from tests.testlib import REPO, SRC, installed_by, run_recording_imports
from tests.video.media import write_video
from tests.video.reference import Recipe, _scale, clip_of, decode_all_frames, windows

VIDEOMAE = "MCG-NJU/videomae-base"
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@pytest.fixture(scope="module")
def spec_store(tmp_path_factory):
    """A tiny random VideoMAE saved as the hub serves it: config (num_frames 4), processor config, safetensors."""
    import torch
    from transformers import VideoMAEConfig, VideoMAEImageProcessor, VideoMAEModel

    store = tmp_path_factory.mktemp("spec-models")
    torch.manual_seed(7)
    config = VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=32,
                            num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    VideoMAEModel(config).eval().save_pretrained(store / VIDEOMAE)
    VideoMAEImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
                           image_mean=MEAN, image_std=STD).save_pretrained(store / VIDEOMAE)
    return store


@pytest.mark.parametrize("frames", [14, 15, 30])  # last window: 2 real frames dropped, 3 padded; only five kept
def test_hf_video_spec_equals_mean_of_clips(spec_store, tmp_path, frames):
    import torch
    from transformers import VideoMAEModel

    trailer = write_video(tmp_path / "trailer.mp4", [40] * frames, size=(64, 48))
    encoder = spec_encoder(spec_store, f"hf-video:{VIDEOMAE}")
    clips = encoder.preprocess(decode(trailer, (encoder.frame_plan,)))
    ours = encoder.embed(clips).mean(0)

    recipe = Recipe(4, 2, T.Compose([T.Lambda(_scale), T.Resize(40), T.CenterCrop(32), T.Normalize(MEAN, STD)]))
    model = VideoMAEModel.from_pretrained(spec_store / VIDEOMAE).eval()
    expected = []
    for window in windows(decode_all_frames(trailer), recipe):
        with torch.no_grad():
            tokens = model(pixel_values=clip_of(window, recipe).permute(1, 0, 2, 3)[None]).last_hidden_state
        expected.append(tokens[0].mean(0).numpy())
    assert encoder.info.dim == 32 and len(clips) == len(expected) == min(5, (frames + 1) // 4)
    np.testing.assert_allclose(ours, np.mean(expected, axis=0), atol=1e-4, rtol=0)


def test_spec_model_runs_through_extract_video(spec_store, tmp_path):
    from m3l.cli import main
    from m3l.readers.features import load_features

    trailers = tmp_path / "trailers"
    trailers.mkdir()
    write_video(trailers / "1.mp4", [40] * 9)
    write_video(trailers / "2.mp4", [40] * 2)  # too short: its one window has 2 of 4 frames
    argv = ["--trailers", trailers, "--models", f"hf-video:{VIDEOMAE}", "--models-dir", spec_store,
            "--output", tmp_path / "out", "--workers", "0"]
    assert main("video", [str(arg) for arg in argv]) == 0
    ids, matrix = load_features(tmp_path / "out", "hf-video--MCG-NJU--videomae-base", source="hdf5")
    assert ids == ["1"] and matrix.shape == (1, 32)
    assert " 2 failed too short" in (tmp_path / "out" / "log_hf-video--MCG-NJU--videomae-base.txt").read_text()


def test_video_runs_load_only_what_video_reqs_pins(spec_store, tmp_path):
    """hf-video: loads, and a model missing from the store offline is the documented error line, with
    nothing that video_reqs.txt leaves to chance (a venv built from it alone runs the same)."""
    trailers = tmp_path / "trailers"
    trailers.mkdir()
    write_video(trailers / "1.mp4", [40] * 4)
    common = ["--trailers", trailers, "--models-dir", spec_store, "--output", tmp_path / "out", "--workers", "0"]
    spec_run, spec_loaded = run_recording_imports(SRC / "extract_video.py", *common, "--models", f"hf-video:{VIDEOMAE}",
                                                  record=tmp_path / "spec.json")
    missing_run, missing_loaded = run_recording_imports(SRC / "extract_video.py", *common, "--models", "slowfast",
                                                        record=tmp_path / "missing.json")
    assert spec_run.returncode == 0, spec_run.stderr
    assert missing_run.returncode == 2 and missing_run.stderr.startswith("error: "), missing_run.stderr
    assert "slowfast" in missing_run.stderr and "Traceback" not in missing_run.stderr
    loaded = spec_loaded | missing_loaded
    assert {"transformers", "huggingface-hub"} <= loaded
    assert loaded <= installed_by(REPO / "video_reqs.txt"), loaded - installed_by(REPO / "video_reqs.txt")
