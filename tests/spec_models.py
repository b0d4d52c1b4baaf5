"""Loading a model spec's encoder from a test store (shared by the modalities' test_spec_models.py)."""

from __future__ import annotations

import sys
from pathlib import Path


def spec_encoder(store: Path, text: str):
    """The encoder of model spec `text`, loaded from its folder in `store`."""
    from m3l import models
    from m3l.models import spec

    info = spec.parse(text)
    encoder = models.encoder_class(info)(info, [store / info.files[0].path])
    encoder.load()
    return encoder


def docs_encoder() -> str:
    """The encoder class docs/models.md shows (`letters.py`: LetterCounts, 26-d, no files in the store)."""
    docs = Path(__file__).resolve().parents[1] / "docs" / "models.md"
    return docs.read_text().split("```python\n")[1].split("```")[0]


def importable(folder: Path, monkeypatch, name: str, source: str) -> None:
    """`name`.py holding `source` in `folder`, on the path and imported afresh (a class edited between runs)."""
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, name, raising=False)
