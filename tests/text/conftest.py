import pytest

from tests.stores import add_clip, add_minilm, add_mpnet, model_store


@pytest.fixture(scope="session")
def text_store(tmp_path_factory):
    """A model store with the real MiniLM and random-weight mpnet and CLIP folders."""
    return model_store(tmp_path_factory.mktemp("models"), add_minilm, add_mpnet, add_clip)


@pytest.fixture(scope="session")
def encode_one_at_a_time(text_store):
    """The recipe, spelled out: SentenceTransformer(folder).encode(plot), one plot per call."""
    from sentence_transformers import SentenceTransformer

    folders = {"minilm": "all-MiniLM-L6-v2", "mpnet": "all-mpnet-base-v2", "clip-text": "clip-ViT-B-32"}
    loaded = {}

    def encode(model: str, plot: str):
        if model not in loaded:
            path = text_store / "sentence-transformers" / folders[model]
            loaded[model] = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        return loaded[model].encode(plot)

    return encode
