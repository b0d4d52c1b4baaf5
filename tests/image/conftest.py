"""Image fixtures: the random-weight store of the three poster models (tests/image/stores.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.image.stores import add_vgg, add_vit
from tests.stores import add_clip, model_store


@pytest.fixture(scope="session")
def image_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_store(tmp_path_factory.mktemp("image-models"), add_clip, add_vgg, add_vit)
