"""Model specs on plots: st: and hf-text: against straight library calls, spec errors, a full run."""

from __future__ import annotations

import numpy as np
import pytest

from m3l.errors import UserError
from m3l.models import spec
from tests.spec_models import spec_encoder
from tests.stores import minilm_source

ST_ID, HF_ID = "BAAI/bge-small-en-v1.5", "intfloat/e5-small-v2"
PLOTS = ["a detective returns to her home town", "the mill burned", "a young pianist learns that the orchestra "
         "is bankrupt while every neighbour keeps a secret about the night the river dried"]


def _tiny_bert(folder, seed: int):
    """A random one-layer BERT with MiniLM's vocabulary, saved as the hub serves it (safetensors)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast(vocab_file=str(minilm_source() / "vocab.txt"))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.model_max_length = 128
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def spec_store(tmp_path_factory):
    """bge-style sentence-transformers folder (CLS pooling, normalised) and an e5-style Hugging Face folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    store = tmp_path_factory.mktemp("spec-models")
    hf = _tiny_bert(store / ".bert", seed=3)
    SentenceTransformer(modules=[Transformer(str(hf), max_seq_length=128), Pooling(32, "cls"), Normalize()]).save(
        str(store / ST_ID))
    _tiny_bert(store / HF_ID, seed=4)
    return store



def test_st_spec_equals_sentence_transformers_encode(spec_store):
    from sentence_transformers import SentenceTransformer

    encoder = spec_encoder(spec_store, f"st:{ST_ID}")
    assert encoder.info.dim == 32
    reference = SentenceTransformer(str(spec_store / ST_ID), device="cpu")
    expected = np.stack([reference.encode(plot) for plot in PLOTS])
    np.testing.assert_allclose(encoder.embed(PLOTS), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("pool", ["mean", "cls"])
def test_hf_text_spec_equals_automodel_pooling(spec_store, pool):
    import torch
    from transformers import AutoModel, AutoTokenizer

    encoder = spec_encoder(spec_store, f"hf-text:{HF_ID}?pool={pool}")
    tokenizer = AutoTokenizer.from_pretrained(spec_store / HF_ID)
    model = AutoModel.from_pretrained(spec_store / HF_ID).eval()
    expected = []
    for plot in PLOTS:  # one at a time: no padding
        with torch.no_grad():
            states = model(**tokenizer(plot, truncation=True, return_tensors="pt")).last_hidden_state[0]
        expected.append((states[0] if pool == "cls" else states.mean(0)).numpy())
    assert encoder.info.dim == 32
    np.testing.assert_allclose(encoder.embed(PLOTS), np.stack(expected), atol=1e-5, rtol=0)


def test_spec_names_folders_and_store_paths():
    info = spec.parse(f"st:{ST_ID}")
    assert (info.folder, info.files[0].path, info.consolidated_name) == (
        "st--BAAI--bge-small-en-v1.5", ST_ID, "text_embeddings_st--BAAI--bge-small-en-v1.5")
    pinned = spec.parse(f"hf-text:{HF_ID}@v1.0?pool=cls")
    assert (pinned.folder, pinned.files[0].path, pinned.files[0].revision) == (
        "hf-text--intfloat--e5-small-v2@v1.0+pool=cls", f"{HF_ID}@v1.0", "v1.0")
    assert spec.parse(f"hf-text:{HF_ID}?pool=mean").folder == spec.parse(f"hf-text:{HF_ID}").folder
    assert "*.safetensors" in info.files[0].allow_patterns


@pytest.mark.parametrize("text, message", [
    ("onnx:BAAI/bge-small-en-v1.5", "unknown model family 'onnx'"),
    ("st:BAAI/bge small", "malformed model id"),
    ("st:BAAI//bge", "malformed model id"),
    ("st:BAAI/bge@", "malformed revision"),
    ("st:BAAI/bge@a..b", "malformed revision"),
    ("st:BAAI/bge?pool=cls", "unknown option 'pool'"),
    ("hf-text:BAAI/bge?pool=max", "option pool"),
    ("no_such_module_m3l:Encoder", "cannot import no_such_module_m3l"),
    ("m3l.models.spec:SpecInfo", "not a subclass of m3l.models.base.Encoder"),
])
def test_spec_errors_name_the_problem(text, message):
    with pytest.raises(UserError, match=message):
        spec.parse(text)
