"""Loading a model spec's encoder from a test store (shared by the modalities' test_spec_models.py)."""

from __future__ import annotations

from pathlib import Path


def spec_encoder(store: Path, text: str):
    """The encoder of model spec `text`, loaded from its folder in `store`."""
    from m3l import models
    from m3l.models import spec

    info = spec.parse(text)
    encoder = models.encoder_class(info)(info, [store / info.files[0].path])
    encoder.load()
    return encoder
