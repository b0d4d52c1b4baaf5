"""The poster recipes of docs/recipes.md spelled out, one image at a time, independent of m3l.

- every poster: `Image.open(path).convert("RGB")` (first frame, EXIF orientation ignored);
- clip-image: `SentenceTransformer(folder).encode(image)`, with the CLIP image processor on its
  PIL backend as the published vectors had it (transformers 4's default);
- vgg: plain PIL and numpy: shorter side to 256 with PIL's bilinear filter (long side truncated,
  as torchvision computes it), centre 224 crop (offsets rounded as torchvision does), [0, 1],
  ImageNet normalisation; vgg16's features, average pool, then the classifier's first two
  Linear + ReLU layers (its Dropouts are inactive in eval);
- vit: PIL bilinear resize to 224x224, [0, 1], (x - 0.5) / 0.5, ViTModel's pooler_output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def poster_rgb(path: Path, exif_rotate: bool = False) -> Image.Image:
    with Image.open(path) as image:
        return (ImageOps.exif_transpose(image) if exif_rotate else image).convert("RGB")


def _chw(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]


def vgg_pixels(image: Image.Image) -> torch.Tensor:
    width, height = image.size
    size = (256, int(256 * height / width)) if width <= height else (int(256 * width / height), 256)
    resized = image.resize(size, Image.BILINEAR)
    left = int(round((resized.width - 224) / 2.0))
    top = int(round((resized.height - 224) / 2.0))
    cropped = np.asarray(resized.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255.0
    return _chw((cropped - IMAGENET_MEAN) / IMAGENET_STD)


def vit_pixels(image: Image.Image) -> torch.Tensor:
    resized = np.asarray(image.resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255.0
    return _chw((resized - 0.5) / 0.5)


class Reference:
    """The three models loaded straight from the store files, and one vector per call."""

    def __init__(self, store: Path) -> None:
        from sentence_transformers import SentenceTransformer
        from torchvision.models import vgg16
        from transformers import ViTModel

        self.clip = SentenceTransformer(str(store / "sentence-transformers/clip-ViT-B-32"), device="cpu",
                                        local_files_only=True, processor_kwargs={"backend": "pil"})
        self.vgg = vgg16()
        self.vgg.load_state_dict(torch.load(store / "torchvision/vgg16-397923af.pth", weights_only=True))
        self.vgg.eval()
        self.vit = ViTModel.from_pretrained(store / "google/vit-base-patch16-224-in21k").eval()

    @torch.inference_mode()
    def vector(self, model: str, image: Image.Image) -> np.ndarray:
        if model == "clip-image":
            return self.clip.encode(image)
        if model == "vgg":
            x = torch.flatten(self.vgg.avgpool(self.vgg.features(vgg_pixels(image))), 1)
            first, second = self.vgg.classifier[0], self.vgg.classifier[3]
            return torch.relu(second(torch.relu(first(x))))[0].numpy()
        if model == "vit":
            return self.vit(pixel_values=vit_pixels(image)).pooler_output[0].numpy()
        raise ValueError(model)
