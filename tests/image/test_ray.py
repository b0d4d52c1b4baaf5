"""extract_images.py with --engine ray on the bundled posters: the local engine's outputs."""

from m3l.models import models_of
from tests.raylib import assert_engines_agree


def test_ray_engine_writes_what_the_local_engine_writes(tmp_path, image_store, ray_cluster):
    assert assert_engines_agree("image", image_store, tmp_path) == [info.folder for info in models_of("image")]
