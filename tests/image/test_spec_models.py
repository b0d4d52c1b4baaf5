"""Model specs on posters: hf-image: (DINOv2, CLIP-style, SigLIP-style) and timm: against straight library calls."""

from __future__ import annotations

import numpy as np
import pytest

from m3l.media.image import Poster
from m3l.models import spec
from tests.spec_models import spec_encoder

DINO, CLIP, SIGLIP, TIMM = "facebook/dinov2-small", "openai/clip-vit-base-patch32", "google/siglip-base-patch16-224", \
    "timm/vit_tiny_patch16_224.augreg_in21k"
TINY = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2)


def _posters() -> list:
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((90, 60), (40, 70))]


def _save(model, processor, folder):
    model.eval().save_pretrained(folder)  # config.json + model.safetensors
    processor.save_pretrained(folder)  # preprocessor_config.json
    return folder


@pytest.fixture(scope="module")
def spec_store(tmp_path_factory):
    """Tiny random checkpoints as the hub serves them: three transformers folders and timm's hub layout."""
    import timm
    import torch
    from timm.models import save_for_hf
    from transformers import (BitImageProcessor, CLIPConfig, CLIPImageProcessor, CLIPModel, Dinov2Config,
                              Dinov2Model, SiglipConfig, SiglipImageProcessor, SiglipModel)

    store = tmp_path_factory.mktemp("spec-models")
    torch.manual_seed(5)
    _save(Dinov2Model(Dinov2Config(**TINY, image_size=28, patch_size=14)),
          BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 28, "width": 28},
                            image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]), store / DINO)
    towers = dict(text_config=dict(TINY, vocab_size=99), vision_config=dict(TINY, image_size=32, patch_size=16))
    _save(CLIPModel(CLIPConfig(**towers, projection_dim=24)), CLIPImageProcessor(size=32, crop_size=32), store / CLIP)
    _save(SiglipModel(SiglipConfig(**towers)), SiglipImageProcessor(size={"height": 32, "width": 32}), store / SIGLIP)
    args = dict(img_size=32, patch_size=8, depth=1, embed_dim=24, num_heads=2)
    save_for_hf(timm.create_model("vit_tiny_patch16_224", num_classes=10, **args), store / TIMM, model_args=args)
    return store



def _embed(encoder, images) -> np.ndarray:
    return encoder.embed([sample for image in images for sample in encoder.preprocess(Poster(image))])


@pytest.mark.parametrize("repo_id, pool, dim", [(DINO, "auto", 32), (DINO, "mean", 32), (DINO, "cls", 32),
                                                (CLIP, "auto", 24), (SIGLIP, "auto", 32)])
def test_hf_image_spec_equals_transformers(spec_store, repo_id, pool, dim):
    import torch
    from transformers import AutoImageProcessor, AutoModel

    encoder = spec_encoder(spec_store, f"hf-image:{repo_id}" + (f"?pool={pool}" if pool != "auto" else ""))
    processor = AutoImageProcessor.from_pretrained(spec_store / repo_id)
    model = AutoModel.from_pretrained(spec_store / repo_id).eval()
    expected = []
    for image in _posters():
        pixels = processor(images=image, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            if repo_id != DINO:  # dual encoders: the image tower's projected features
                expected.append(model.get_image_features(pixel_values=pixels).pooler_output[0])
                continue
            outputs = model(pixel_values=pixels)
        tokens = outputs.last_hidden_state[0]
        expected.append({"auto": outputs.pooler_output[0], "cls": tokens[0], "mean": tokens[1:].mean(0)}[pool])
    assert encoder.info.dim == dim
    np.testing.assert_allclose(_embed(encoder, _posters()), torch.stack(expected).numpy(), atol=1e-5, rtol=0)


def test_timm_spec_equals_pre_logits_with_its_data_config(spec_store):
    import timm
    import torch

    encoder = spec_encoder(spec_store, f"timm:{TIMM}")
    model = timm.create_model(f"local-dir:{spec_store / TIMM}", pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
    with torch.no_grad():
        expected = [model.forward_head(model.forward_features(transform(image)[None]), pre_logits=True)[0]
                    for image in _posters()]
    assert encoder.info.dim == 24
    np.testing.assert_allclose(_embed(encoder, _posters()), torch.stack(expected).numpy(), atol=1e-5, rtol=0)


def test_timm_download_takes_only_its_config_and_weights():
    assert spec.parse(f"timm:{TIMM}").files[0].allow_patterns == ("config.json", "model.safetensors")


def test_spec_models_run_through_extract_images(spec_store, tmp_path, capsys):
    from m3l.cli import main
    from m3l.readers.features import load_features

    posters = tmp_path / "posters"
    posters.mkdir()
    for index, image in enumerate(_posters(), start=1):
        image.save(posters / f"{index}.png")
    (posters / "3.jpg").write_bytes(b"not an image")
    argv = ["--posters", posters, "--models", f"timm:{TIMM},hf-image:{SIGLIP}", "--models-dir", spec_store,
            "--output", tmp_path / "out", "--workers", "0"]
    assert main("image", [str(arg) for arg in argv]) == 0
    for folder, dim in (("timm--timm--vit_tiny_patch16_224.augreg_in21k", 24), ("hf-image--google--siglip-base-patch16-224", 32)):
        ids, matrix = load_features(tmp_path / "out", folder, source="hdf5")
        assert ids == ["1", "2"] and matrix.shape == (2, dim)
        assert " 3 failed not an image" in (tmp_path / "out" / f"log_{folder}.txt").read_text()
