"""Our shared-decode, batched video vectors against the reference (tests/video/reference.py), and the
single scripts against extract_video.py."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.outputs import read_vector
from tests.video.helpers import DIMS, NAMES, run_ok


@pytest.mark.parametrize("name", NAMES)
def test_shared_decode_and_batched_clips_match_the_reference(name, combined, trailers, reference_models):
    output, result = combined
    assert f"{name}: 2 done, 0 already done, 0 failed" in result.stdout
    for movie_id, trailer in (("1", trailers["bbb_head"]), ("2", trailers["vfr"])):
        ours = read_vector(output / name, movie_id)
        assert ours.shape == (DIMS[name],)
        np.testing.assert_allclose(ours, reference_models(name).vector(trailer), atol=1e-4, rtol=0)
    assert not np.allclose(read_vector(output / name, "1"), read_vector(output / name, "2"), atol=1e-2)


def test_single_scripts_give_the_vectors_of_extract_video(combined, trailers, tmp_path, video_store):
    folder = tmp_path / "trailers"
    folder.mkdir()
    shutil.copy(trailers["vfr"], folder / "2.mp4")  # a folder of <id>.<ext> files this time
    top = tmp_path / "features_json_format"  # the published layout, recognised by the root's name
    for name in NAMES:
        run_ok(f"extract_{name}.py", "--trailers", folder, "--models-dir", video_store, "--output", top)
        assert [p.name for p in top.iterdir() if p.is_dir()] == ["3_video_feat"]
        output = top / "3_video_feat"
        assert sorted(p.name for p in output.iterdir() if p.is_dir()) == sorted(NAMES[:NAMES.index(name) + 1])
        np.testing.assert_allclose(read_vector(output / name, "2"), read_vector(combined[0] / name, "2"),
                                   atol=1e-5, rtol=0)
