"""extract_video.py with --engine ray: the local engine's outputs, clip means included
(mvit cuts the trailer into two clips)."""

from tests.raylib import assert_engines_agree
from tests.testlib import write_map


def test_ray_engine_writes_what_the_local_engine_writes(tmp_path, video_store, trailers, ray_cluster):
    catalogue = write_map(tmp_path / "trailers.tsv", [("1", trailers["odd"]), ("2", tmp_path / "missing.mp4")])
    assert assert_engines_agree("video", video_store, tmp_path / "out", "--trailers", str(catalogue),
                                "--batch-size", "2") == ["mvit", "r2p1d", "slowfast"]
