"""The video scripts end to end on a random-weight store: bad inputs, resume, consolidation, the demo.

Every model run costs seconds per clip on two cores, so the catalogues are built to
give one clip per model and trailer.
"""

from __future__ import annotations

import json
import os
import subprocess

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from m3l import load_features
from m3l.model_store import ModelStore
from m3l.models import MODELS
from m3l.store.layout import ModelLayout
from m3l.store.provenance import ProvenanceLog, record
from tests.outputs import read_vector
from tests.testlib import REPO, run_script, write_map
from tests.video.helpers import DIMS, NAMES, log_lines, run_ok


def test_consolidated_tables_hold_the_json_vectors(combined):
    output, _ = combined
    for name in NAMES:
        table = pq.read_table(output / f"video_embeddings_{name}.parquet")
        assert table.column("movie_id").to_pylist() == [1, 2]
        assert str(table.schema.field("movie_id").type) == "int64"
        embeddings = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
        with h5py.File(output / f"video_embeddings_{name}.h5") as handle:
            assert handle["movie_ids"][:].tolist() == [1, 2]
            np.testing.assert_array_equal(handle["embeddings"][:], embeddings)
        np.testing.assert_array_equal(embeddings, np.stack([read_vector(output / name, i) for i in ("1", "2")]))


def test_under_layout_m3l_the_models_are_in_3_video_feat_where_readers_find_them(combined):
    output, _ = combined
    top = output.parent
    assert [path.name for path in top.iterdir() if path.is_dir()] == ["3_video_feat"]
    for name in NAMES:
        expected = np.stack([read_vector(output / name, i) for i in ("1", "2")])
        for root, layout in ((top, "m3l"), (output, None)):  # asked for, or recognised by the root's name
            ids, vectors = load_features(root, name, layout=layout)
            assert ids == ["1", "2"] and np.array_equal(vectors, expected)
    for root, flag in ((top, ("--layout", "m3l")), (output, ())):
        verified = run_script("verify.py", "--output", root, *flag)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert verified.stdout.splitlines()[-1] == "verify: OK (3 models checked)"


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory, video_store, bad_trailers):
    folder = tmp_path_factory.mktemp("bad")
    rows = [("10", bad_trailers["missing"]), ("11", bad_trailers["empty"]), ("12", bad_trailers["not_media"]),
            ("13", bad_trailers["audio_only"]), ("14", bad_trailers["too_short"]), ("15", bad_trailers["truncated"]),
            ("16", bad_trailers["corrupt"]), ("15", bad_trailers["corrupt"]), ("bad id!", bad_trailers["corrupt"]),
            ("17", "")]
    catalogue = write_map(folder / "trailers.tsv", rows)
    args = ["--trailers", catalogue, "--models-dir", video_store, "--output", folder / "out"]
    return folder / "out", args, run_ok("extract_slowfast.py", *args)


def test_every_bad_input_is_logged_and_the_run_goes_on(bad_run):
    output, _, result = bad_run
    assert "slowfast: 2 done, 0 already done, 5 failed, 3 skipped" in result.stdout
    log = "\n".join(log_lines(output, "slowfast"))
    for expected in ("slowfast 10 failed trailer file not found", "slowfast 11 failed trailer file is empty",
                     "slowfast 12 failed not a readable media file", "slowfast 13 failed no video stream in audio_only.m4a",
                     "slowfast 14 failed too short for slowfast: 20 frames up to 30 s",
                     "slowfast 15 skipped duplicate id", "skipped invalid id", "slowfast 17 skipped row without a file path",
                     "slowfast 15 warning stream ended after 40 of the 80 frames",
                     "slowfast 16 warning undecodable packet at"):
        assert expected in log
    assert sorted(p.name for p in (output / "slowfast").glob("*.json")) == ["15.json", "16.json"]


def test_a_stream_failing_part_way_uses_the_frames_before_it(bad_run, bad_trailers, reference_models):
    output, _, _ = bad_run
    np.testing.assert_allclose(read_vector(output / "slowfast", "15"),
                               reference_models("slowfast").vector(bad_trailers["truncated"]), atol=1e-4, rtol=0)


def test_a_rerun_skips_the_trailers_already_done(bad_run):
    output, args, _ = bad_run
    before = {p.name: p.stat().st_mtime_ns for p in (output / "slowfast").iterdir()}
    again = run_ok("extract_slowfast.py", *args)
    assert "slowfast: 0 done, 2 already done, 5 failed" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in (output / "slowfast").iterdir()} == before


def test_make_demo_video_resumes_and_consolidates(tmp_path, video_store):
    """The demo's own code path: `make demo-video` on the bundled catalogue. Vectors of an earlier
    run are planted with its provenance record (the four bundled trailers cost ~40 clips), one of them
    corrupt: the demo keeps the good ones, recomputes the corrupt one and consolidates all four."""
    ids = ["1", "2", "3", "4"]
    output = tmp_path / "features"
    for name in NAMES:
        info = MODELS[name]
        earlier_run = record(name, ModelStore(video_store).weights_digest(info.files), info.recipe, "fp32", "cpu")
        (output / name).mkdir(parents=True)
        ProvenanceLog(ModelLayout(output, info).provenance).claim(earlier_run, allow_mixed=False, present=[])
    planted = {(name, movie_id): [0.25] * DIMS[name] for name in NAMES for movie_id in ids}
    for (name, movie_id), values in planted.items():
        (output / name / f"{movie_id}.json").write_text(json.dumps({movie_id: values}))
    (output / "slowfast" / "4.json").write_text('{"4": [0.1, 0.2')  # a run killed mid-write, without atomic files
    result = subprocess.run(["make", "demo-video", f"MODELS_DIR={video_store}", f"OUTPUT={output}"], cwd=REPO,
                            capture_output=True, text=True, env={**os.environ, "M3L_OFFLINE": "1"}, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    for summary in ("slowfast: 1 done, 3 already done", "mvit: 0 done, 4 already done", "r2p1d: 0 done, 4 already done"):
        assert summary in result.stdout
    assert any(" 4 recompute " in line for line in log_lines(output, "slowfast"))
    recomputed = read_vector(output / "slowfast", "4")
    assert recomputed.shape == (2304,) and not np.allclose(recomputed, 0.25)
    for name in NAMES:
        table = pq.read_table(output / f"video_embeddings_{name}.parquet")
        assert table.column("movie_id").to_pylist() == [1, 2, 3, 4]
        for movie_id in ids:
            if (name, movie_id) != ("slowfast", "4"):
                assert read_vector(output / name, movie_id).tolist() == planted[name, movie_id]
