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
    assert set(video.frames) == set(names)


def test_slowfast_keeps_only_every_second_frame(media):
    video = loader_for(encoders(["slowfast"]), None)(Item("1", str(media["vfr"])))
    assert video.frames["slowfast"].shape == (20, 3, 256, 256)  # frames 0, 2, ..., 38 of 40


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
