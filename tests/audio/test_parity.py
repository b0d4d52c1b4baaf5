"""Our single-decode, batched pipeline against the recipe run model by model (tests/audio/reference.py)."""

import numpy as np
import pytest

from m3l.models import models_of
from tests.audio.stores import AST, VGGISH, VGGISH_PCA, WHISPER
from tests.audio.helpers import FOLDERS
from tests.audio.reference import ast_vector, vggish_vector, whisper_vector
from tests.outputs import read_vectors
from tests.testlib import DATA, bigbuckbunny, run_script, write_map

MODELS = tuple(info.name for info in models_of("audio"))
# The reference builds AST's extractor without our loader's filter: its notice of empty mel bands is expected.
pytestmark = pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values:UserWarning")


@pytest.fixture(scope="module")
def trailers(sounds):
    named = {name.split(".")[0]: path for name, path in sounds.items()}
    return {**named, "bigbuckbunny": bigbuckbunny(), "sample": DATA / "trailers" / "3.mp4"}


@pytest.fixture(scope="module")
def pipeline_output(audio_store, trailers, tmp_path_factory):
    folder = tmp_path_factory.mktemp("parity")
    tsv = write_map(folder / "trailers.tsv", list(trailers.items()), header=False)
    result = run_script("extract_audio.py", "--trailers", tsv, "--models-dir", audio_store,
                        "--output", folder / "out", "--batch-size", "3", "--workers", "2")
    assert result.returncode == 0, result.stderr
    return folder / "out"


def reference(store, model, trailer):
    if model == "whisper":
        return whisper_vector(store / WHISPER, trailer)
    if model == "ast":
        return ast_vector(store / AST, trailer)
    return vggish_vector(store / VGGISH, store / VGGISH_PCA, trailer)


@pytest.mark.parametrize("model", MODELS)
def test_every_trailer_matches_the_reference_within_1e_4(audio_store, trailers, pipeline_output, model):
    ours = read_vectors(pipeline_output / FOLDERS[model])
    assert sorted(ours) == sorted(trailers)
    for movie_id, trailer in trailers.items():
        expected = reference(audio_store, model, trailer)
        assert ours[movie_id].shape == expected.shape == ({"whisper": 512, "ast": 768, "vggish": 128}[model],)
        np.testing.assert_allclose(ours[movie_id], expected, atol=1e-4, rtol=0, err_msg=f"{model} {movie_id}")


def test_vectors_differ_between_trailers(pipeline_output):
    """Guards the parity test against degenerate random models that map everything to one vector."""
    for model in MODELS:
        found = np.stack(list(read_vectors(pipeline_output / FOLDERS[model]).values()))
        assert np.ptp(found, axis=0).max() > 1e-2, model


def test_values_are_rounded_to_six_decimals(pipeline_output):
    text = (pipeline_output / "audio_whisper" / "bigbuckbunny.json").read_text()
    decimals = [len(token.split(".")[1]) for token in text.replace("]", ",").split(",") if "." in token]
    assert max(decimals) <= 6
