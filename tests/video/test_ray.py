"""extract_video.py with --engine ray: the local engine's outputs, clip means included (r2p1d cuts the
trailer into two clips; slowfast takes it in one). The engine treats every video model alike; the
models' own recipes are test_parity.py's."""

from tests.raylib import assert_engines_agree
from tests.testlib import write_map
from tests.video.media import write_video


def test_ray_engine_writes_what_the_local_engine_writes(tmp_path, video_store, ray_cluster):
    trailer = write_video(tmp_path / "odd.mkv", [40] * 64, size=(101, 57), pix_fmt="yuv444p")
    catalogue = write_map(tmp_path / "trailers.tsv", [("1", trailer), ("2", tmp_path / "missing.mp4")])
    assert assert_engines_agree("video", video_store, tmp_path / "out", "--trailers", str(catalogue),
                                "--models", "r2p1d,slowfast", "--batch-size", "2") == ["r2p1d", "slowfast"]
