"""Loader workers and /dev/shm: a trailer takes the shared memory its decoded frames need, and one that
finds no room is decoded in the main process instead of failing."""

from __future__ import annotations

import sys

from tests.core.extractors import in_private_mounts
from tests.testlib import SRC
from tests.video.helpers import log_lines
from tests.video.media import flat_video


def test_a_short_4k_trailer_takes_shared_memory_for_its_own_frames(tmp_path, video_store):
    """3 GB of /dev/shm is room for one worker (three 1080p trailers in flight); two 4K frames took
    room for 160 (4 GB) and failed with 'unable to allocate shared memory'."""
    trailers = tmp_path / "trailers"
    trailers.mkdir()
    flat_video(trailers / "1.mp4", 2, (3840, 2160))
    run = (f"'{sys.executable}' '{SRC / 'extract_video.py'}' --trailers '{trailers}' --models r2p1d "
           f"--models-dir '{video_store}' --output '{tmp_path / 'out'}' --workers 1")
    result = in_private_mounts(f"mount -t tmpfs -o size=3g tmpfs /dev/shm && {run}")
    assert result.returncode == 0, result.stderr
    assert log_lines(tmp_path / "out", "r2p1d")[-1].split(" ", 1)[1].startswith(
        "r2p1d 1 failed too short for r2p1d: 2 frames up to 30 s")


PREPARE = """
import sys
from m3l import models
from m3l.catalog import Item
from m3l.engines.local import PreparedItems, prepared_stream
from m3l.media.video import VideoLoader


class Understated(VideoLoader):  # says its trailers take 1 MB: the room check lets a worker start
    shared_bytes = 2**20


info = models.resolve(["r2p1d"], "video")[0]
encoder = models.encoder_class(info)(info, [], "cpu")
items = [Item("big", sys.argv[1]), Item("small", sys.argv[2])]
dataset = PreparedItems(items, Understated((encoder.frame_plan,)), [[encoder]] * 2)
for movie_id, prepared, warnings in prepared_stream(dataset, workers=1, batch_size=2):
    print(movie_id, type(prepared[info.folder]).__name__, len(prepared[info.folder]), *warnings, sep="|")
"""


def test_a_trailer_without_room_in_shared_memory_is_decoded_in_the_main_process(tmp_path):
    big = flat_video(tmp_path / "big.mp4", 32, (1920, 1080))  # r2p1d's one clip: 190 MB
    small = flat_video(tmp_path / "small.mp4", 32, (64, 48))
    (tmp_path / "prepare.py").write_text(PREPARE)
    result = in_private_mounts(f"mount -t tmpfs -o size=16m tmpfs /dev/shm && PYTHONPATH='{SRC}' "
                               f"'{sys.executable}' '{tmp_path / 'prepare.py'}' '{big}' '{small}'")
    assert result.returncode == 0, result.stderr
    big_line, small_line = result.stdout.splitlines()
    assert big_line.startswith("big|list|1|prepared in the main process: no room in /dev/shm for 190 MB of frames: ")
    assert small_line == "small|list|1"
