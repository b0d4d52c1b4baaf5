from pathlib import Path

import pytest

from m3l import models
from m3l.models import ModelInfo
from tests.core.extractors import Extractor, arguments, build_store, make_catalogue, run
from tests.stores import add_minilm
from tests.testlib import DATA, run_script


@pytest.fixture(scope="session")
def minilm_output(tmp_path_factory) -> Path:
    """The real all-MiniLM-L6-v2 run through extract_text.py on the bundled plots (consolidated)."""
    store = tmp_path_factory.mktemp("models")
    add_minilm(store)
    output = tmp_path_factory.mktemp("features")
    result = run_script("extract_text.py", "--plots", DATA / "plots.tsv", "--models", "minilm",
                        "--models-dir", store, "--output", output, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    return output


@pytest.fixture(scope="session")
def extractor_store(tmp_path_factory):
    """Extractor → its test model store, built once per session."""
    stores = {}

    def store_of(extractor: Extractor) -> Path:
        if extractor.modality not in stores:
            stores[extractor.modality] = build_store(extractor, tmp_path_factory.mktemp(f"store-{extractor}"))
        return stores[extractor.modality]

    return store_of


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory, extractor_store):
    """Extractor → (catalogue, output) of one uninterrupted run on its many-item catalogue."""
    runs = {}

    def clean_run_of(extractor: Extractor) -> tuple[Path, Path]:
        if extractor.modality not in runs:
            folder = tmp_path_factory.mktemp(f"clean-{extractor}")
            catalogue = make_catalogue(extractor, folder / "input")
            code, _, stderr = run(extractor, arguments(extractor, catalogue, extractor_store(extractor),
                                                       folder / "output"))
            assert code == 0, stderr
            runs[extractor.modality] = catalogue, folder / "output"
        return runs[extractor.modality]

    return clean_run_of


@pytest.fixture(scope="session")
def minilm_store(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("store")
    add_minilm(store)
    return store


@pytest.fixture
def misbehaving(monkeypatch) -> str:
    """The test-only encoder of tests/core/misbehaving.py in the model table, with minilm's weights."""
    info = ModelInfo("misbehaving", "misbehaving", "text", 384, models.MODELS["minilm"].files,
                     "tests.core.misbehaving:MisbehavingEncoder")
    monkeypatch.setitem(models.MODELS, info.name, info)
    return info.name
