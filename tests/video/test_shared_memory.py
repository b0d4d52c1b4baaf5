"""Loader workers and /dev/shm: a trailer takes the shared memory its decoded frames need, and one that
finds no room is decoded in the main process instead of failing."""

from __future__ import annotations

import sys

from tests.core.extractors import in_private_mounts
from tests.testlib import SRC
from tests.video.media import flat_video

# One loader worker prepares the trailers given for r2p1d (too short for a clip: its failure tells how
# far the trailer went); a line per trailer: id|failure|warnings.
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
loader = (Understated if sys.argv[1] == "understated" else VideoLoader)((encoder.frame_plan,))
items = [Item(path.rsplit("/", 1)[1], path) for path in sys.argv[2:]]
for movie_id, prepared, warnings in prepared_stream(PreparedItems(items, loader, [[encoder]] * len(items)), 1, 2):
    print(movie_id, prepared[info.folder].reason, *warnings, sep="|")
"""


def prepare_in_a_worker(tmp_path, shm_size: str, loader: str, *trailers) -> list[str]:
    (tmp_path / "prepare.py").write_text(PREPARE)
    paths = " ".join(f"'{path}'" for path in trailers)
    result = in_private_mounts(f"mount -t tmpfs -o size={shm_size} tmpfs /dev/shm && PYTHONPATH='{SRC}' "
                               f"'{sys.executable}' '{tmp_path / 'prepare.py'}' {loader} {paths}")
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


TOO_SHORT = "too short for r2p1d: 2 frames up to 30 s"


def test_a_short_4k_trailer_takes_shared_memory_for_its_own_frames(tmp_path):
    """3 GB of /dev/shm is room for one worker (three 1080p trailers in flight); two 4K frames took
    room for 160 (4 GB) and failed with 'unable to allocate shared memory'."""
    trailer = flat_video(tmp_path / "4k.mp4", 2, (3840, 2160))
    [line] = prepare_in_a_worker(tmp_path, "3g", "actual", trailer)
    assert line.startswith(f"4k.mp4|{TOO_SHORT}") and "|" not in line[len(f"4k.mp4|{TOO_SHORT}"):], line


def test_a_trailer_without_room_in_shared_memory_is_decoded_in_the_main_process(tmp_path):
    big = flat_video(tmp_path / "big.mp4", 2, (3840, 2160))  # 47 MB of frames, 16 MB of /dev/shm
    small = flat_video(tmp_path / "small.mp4", 2, (64, 48))
    big_line, small_line = prepare_in_a_worker(tmp_path, "16m", "understated", big, small)
    assert big_line.startswith(f"big.mp4|{TOO_SHORT}")
    assert "|prepared in the main process: no room in /dev/shm for 47 MB of frames: " in big_line
    assert small_line.startswith(f"small.mp4|{TOO_SHORT}") and small_line.count("|") == 1
