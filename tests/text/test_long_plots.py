"""A plot longer than any model reads: only its start reaches the tokenizer, and the tokens stay the same."""

from __future__ import annotations

import random

import numpy as np
import pytest

from m3l import models
from m3l.models.text import tokenized_part
from tests.text.helpers import WORDS

FOLDERS = {"minilm": "all-MiniLM-L6-v2", "mpnet": "all-mpnet-base-v2", "clip-text": "clip-ViT-B-32"}
rng = random.Random(0)
PLOTS = {
    "long": " ".join(rng.choice(WORDS) + rng.choice(["", "", ",", "."]) for _ in range(8_000)),
    # CJK without spaces: BERT splits at each ideograph, CLIP at the punctuation
    "cjk": "".join(rng.choice("的一是不了人我在有他这为之大来以个中上们，。") for _ in range(20_000)),
    "one word": "a" * 50_000,
}
# The random mpnet's vocabulary has no unknown token: it reads ASCII words only (its tokenizer is BERT's too)
CASES = [(model, plot) for model in FOLDERS for plot in PLOTS if model != "mpnet" or plot == "long"]


@pytest.fixture(scope="module")
def encoder(text_store):
    loaded = {}

    def get(name: str):
        if name not in loaded:
            info = models.MODELS[name]
            loaded[name] = models.encoder_class(info)(info, [text_store / "sentence-transformers" / FOLDERS[name]],
                                                      "cpu")
            loaded[name].load()
        return loaded[name]

    return get


@pytest.mark.parametrize("model, plot", CASES)
def test_the_part_tokenized_gives_the_whole_plots_token_ids(encoder, model, plot):
    text = PLOTS[plot]
    model = encoder(model).model
    part = tokenized_part(text, model.tokenizer, model.max_seq_length)
    assert text.startswith(part)
    ours, whole = (model.tokenize([t])["input_ids"] for t in (part, text))
    assert ours.tolist() == whole.tolist()
    if plot != "one word":
        assert len(part) <= 64 * model.max_seq_length


def test_a_2_mb_plot_reaches_the_tokenizer_as_its_first_words_only(encoder, monkeypatch):
    minilm = encoder("minilm")
    seen = []
    preprocess = minilm.model.preprocess

    def recording(inputs, *args, **kwargs):
        seen.extend(map(len, inputs))
        return preprocess(inputs, *args, **kwargs)

    monkeypatch.setattr(minilm.model, "preprocess", recording)
    plot = " ".join(rng.choice(WORDS) for _ in range(400_000))
    assert len(plot) > 2_000_000
    vectors = minilm.embed([plot, "a short plot"])
    assert vectors.shape == (2, 384) and np.isfinite(vectors).all()
    assert seen == [256 * 16, len("a short plot")]
