"""Our batched plot vectors equal the recipe spelled out one plot at a time."""

from __future__ import annotations

import numpy as np
import pytest

from tests.outputs import read_vectors
from tests.testlib import run_script
from tests.text.helpers import make_plots, write_tsv


@pytest.mark.parametrize("model, dim", [("minilm", 384), ("mpnet", 768), ("clip-text", 512)])
def test_vectors_equal_one_plot_at_a_time_encode(tmp_path, text_store, encode_one_at_a_time, model, dim):
    plots = make_plots(40)
    result = run_script("extract_text.py", "--plots", write_tsv(tmp_path / "plots.tsv", plots), "--models", model,
                        "--models-dir", text_store, "--output", tmp_path / "out", "--batch-size", "16")
    assert result.returncode == 0, result.stderr
    vectors = read_vectors(tmp_path / "out" / model)
    assert set(vectors) == set(plots)
    for movie_id, plot in plots.items():
        assert vectors[movie_id].shape == (dim,)
        np.testing.assert_allclose(vectors[movie_id], encode_one_at_a_time(model, plot), atol=1e-5, rtol=0)
