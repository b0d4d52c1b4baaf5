from pathlib import Path

import pytest

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
