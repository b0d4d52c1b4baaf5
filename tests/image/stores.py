"""Random-weight poster models in the exact formats their publishers ship, written into a test model store.

- `sentence-transformers/clip-ViT-B-32/`: the shared tiny CLIP folder (tests.stores.add_clip).
- `torchvision/vgg16-397923af.pth`: a full torchvision vgg16 state dict (the architecture is fixed).
- `google/vit-base-patch16-224-in21k/`: a Hugging Face ViTModel folder with its pooler, weights in
  `pytorch_model.bin` and the published `preprocessor_config.json`; one layer, the real 768 width.
"""

from __future__ import annotations

import json
from pathlib import Path

VGG = "torchvision/vgg16-397923af.pth"
VIT = "google/vit-base-patch16-224-in21k"

# The image processor config exactly as the ViT repository publishes it.
VIT_PREPROCESSOR = {
    "do_normalize": True, "do_resize": True, "feature_extractor_type": "ViTFeatureExtractor",
    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2, "size": 224,
}


def add_vgg(store: Path, seed: int = 1) -> Path:
    import torch
    from torchvision.models import vgg16

    path = store / VGG
    path.parent.mkdir(parents=True)
    torch.manual_seed(seed)
    torch.save(vgg16().state_dict(), path, _use_new_zipfile_serialization=False)  # a 2017 file: legacy format
    return path


def add_vit(store: Path, seed: int = 2) -> Path:
    import torch
    from transformers import ViTConfig, ViTModel

    folder = store / VIT
    folder.mkdir(parents=True)
    config = ViTConfig(hidden_size=768, num_hidden_layers=1, num_attention_heads=12, intermediate_size=64,
                       image_size=224, patch_size=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config.architectures = ["ViTModel"]
    torch.manual_seed(seed)
    model = ViTModel(config, add_pooling_layer=True)
    config.to_json_file(folder / "config.json")
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "preprocessor_config.json").write_text(json.dumps(VIT_PREPROCESSOR, indent=2))
    return folder
