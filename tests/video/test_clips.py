"""Decoding and preprocessing parity: our clips equal the reference's, window by window.

Cheap (no model runs), so it covers every frame-rate, size and length case; the
vector tests in test_runs.py then run the models on a few of them.
"""

from __future__ import annotations

import os

import pytest
import torch

from m3l import models
from m3l.catalog import Item
from m3l.media.video import loader_for
from tests.testlib import bigbuckbunny, bikes
from tests.video.media import write_video
from tests.video.reference import RECIPES, clip_of, decode_all_frames, windows

NAMES = [info.name for info in models.models_of("video")]
# case → clips per model as the recipe's window rules give them (large outputs are costly: not every
# case checks every model)
EXPECTED_CLIPS = {
    "vfr": {"slowfast": 1, "mvit": 1, "r2p1d": 1},  # 40 frames: slowfast pads 40 → 64, the others drop 8
    "odd": {"slowfast": 1, "mvit": 2, "r2p1d": 1},  # 50 frames: mvit pads its second window, r2p1d drops it
    "past30": {"slowfast": 2, "mvit": 4, "r2p1d": 3},  # 113 frames up to 30 s
    "long": {"r2p1d": 5},  # 360 frames, five windows
    "bbb_head": {"slowfast": 1, "mvit": 1, "r2p1d": 1},  # real 720p H.264
    "bigbuckbunny": {"mvit": 4},  # 132 frames
    "bikes": {"slowfast": 4, "mvit": 5, "r2p1d": 5},  # 250 frames: slowfast pads its fourth window (58 real)
}


def encoders(names=NAMES):
    return [models.encoder_class(info)(info, [], "cpu") for info in models.resolve(names, "video")]


@pytest.fixture(scope="module")
def media(trailers):
    return {**trailers, "bigbuckbunny": bigbuckbunny(), "bikes": bikes()}


@pytest.mark.parametrize("case", list(EXPECTED_CLIPS))
def test_shared_decode_gives_the_reference_clips(case, media):
    chosen = encoders(list(EXPECTED_CLIPS[case]))
    video = loader_for(chosen, None)(Item("1", str(media[case])))
    frames = decode_all_frames(media[case])
    assert video.warnings == []
    assert video.count == min(len(frames), max(5 * encoder.window for encoder in chosen))
    for encoder in chosen:
        expected = EXPECTED_CLIPS[case][encoder.info.name]
        ours = encoder.preprocess(video)
        recipe = RECIPES[encoder.info.name]
        theirs = [clip_of(window, recipe) for window in windows(frames, recipe)]
        assert len(ours) == len(theirs) == expected, encoder.info.name
        for our_clip, their_clip in zip(ours, theirs):
            assert our_clip.shape == their_clip.shape
            torch.testing.assert_close(our_clip, their_clip, atol=1e-5, rtol=0)


@pytest.mark.parametrize("names, frames", [(["r2p1d"], 160), (["r2p1d", "mvit"], 160), (["r2p1d", "slowfast"], 320)])
def test_decoding_stops_once_the_requested_models_have_their_frames(names, frames, media):
    video = loader_for(encoders(names), None)(Item("1", str(media["long"])))
    assert video.count == frames
    assert set(video.rows) == set(names)


def test_on_a_gpu_clips_name_uint8_frames_that_the_device_transforms(media):
    """Encoders for a GPU leave the transform to the device; without one, `clip_tensor` on the CPU
    stands in for it (the same code, with one frame per pass instead of the whole clip)."""
    video = loader_for(encoders(["mvit"]), None)(Item("1", str(media["odd"])))
    (info,) = models.resolve(["mvit"], "video")
    for_gpu = models.encoder_class(info)(info, [], "cuda")
    clips = for_gpu.preprocess(video)
    assert [(clip.rows, clip.missing) for clip in clips] == [(tuple(range(32)), 0), (tuple(range(32, 50)), 14)]
    assert all(clip.frames is video.frames for clip in clips)
    for_gpu.device = "cpu"
    for ours, theirs in zip([for_gpu.clip_tensor(clip) for clip in clips], encoders(["mvit"])[0].preprocess(video)):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_each_frame_is_kept_once_and_only_if_a_model_uses_it(media):
    video = loader_for(encoders(["slowfast"]), None)(Item("1", str(media["vfr"])))
    assert video.frames.tensor.shape == (20, 64, 96, 3) and video.frames.tensor.dtype == torch.uint8  # frames 0, 2, ..., 38
    assert video.rows["slowfast"] == list(range(20))
    video = loader_for(encoders(["slowfast", "r2p1d"]), None)(Item("1", str(media["long"])))
    assert len(video.frames.tensor) == 160 + 80  # every frame below 160 (r2p1d), the even ones from 160 to 318
    assert video.rows["r2p1d"] == list(range(160))
    assert video.rows["slowfast"] == list(range(0, 160, 2)) + list(range(160, 240))


def test_a_trailer_starting_after_30_s_fails_saying_why(tmp_path):
    trailer = write_video(tmp_path / "late.mp4", [40] * 3, start_ms=40_000)
    with pytest.raises(ValueError, match="no video frame could be decoded: its first frame is at 40.00 s, after the "
                                         "30 s the recipe reads"):
        loader_for(encoders(["r2p1d"]), None)(Item("1", str(trailer)))


def test_a_damaged_trailer_decodes_alike_whatever_cpus_the_process_may_use(bad_trailers):
    """FFmpeg sizes its thread pool by the CPUs at hand; a truncated stream must not decode differently."""
    load = loader_for(encoders(["r2p1d"]), None)
    item = Item("15", str(bad_trailers["truncated"]))
    every_cpu = load(item)
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})  # this thread only: the decoder's threads start from it
    try:
        one_cpu = load(item)
    finally:
        os.sched_setaffinity(0, cpus)
    assert (one_cpu.count, one_cpu.warnings) == (every_cpu.count, every_cpu.warnings)
    assert every_cpu.warnings == ["stream ended after 40 of the 80 frames its header announces "
                                  "(truncated or damaged file?)"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compares the CUDA transforms with the CPU ones: "
                                                          "needs a CUDA device")
def test_transforms_on_cuda_equal_the_cpu_ones(media):
    video = loader_for(encoders(), None)(Item("1", str(media["bikes"])))
    on_cuda = [models.encoder_class(info)(info, [], "cuda") for info in models.resolve(NAMES, "video")]
    for cpu, cuda in zip(encoders(), on_cuda):
        for on_cpu, clip in zip(cpu.preprocess(video), cuda.preprocess(video), strict=True):
            torch.testing.assert_close(cuda.clip_tensor(clip).cpu(), on_cpu, atol=1e-5, rtol=0)
