"""Poster encoders per docs/recipes.md: clip-image, vgg and vit.

Each encoder's `preprocess` turns a decoded RGB poster into a [3, 224, 224] float
tensor in the loader workers, exactly as its recipe says; `embed` stacks a batch and
runs the network. The image processors of CLIP and ViT run on their PIL backend: the
one the published vectors came from (transformers 4's default, and what
sentence-transformers' `encode(PIL image)` did), not transformers 5's torchvision
default, which resamples differently by one grey level here and there.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np
import torch

from m3l.media.image import Poster
from m3l.models.base import Encoder
from m3l.models.shared import IMAGENET_MEAN, IMAGENET_STD, SpecEncoder, pooled_output


class _ImageEncoder(Encoder):
    """Shared by the three: a batched, gradient-free forward of the stacked tensors."""

    network: torch.nn.Module

    @property
    def dtype(self) -> torch.dtype:
        return torch.float16 if self.half else torch.float32

    def _place(self, network: torch.nn.Module) -> torch.nn.Module:
        return network.to(self.device, self.dtype).eval()

    def embed(self, pixels: list[torch.Tensor]) -> np.ndarray:
        batch = torch.stack(pixels).to(self.device, self.dtype)
        with torch.inference_mode():
            return self.forward(batch).float().cpu().numpy()

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.network(batch)


class _ProcessorEncoder(_ImageEncoder):
    """CLIP and ViT: the checkpoint's own image processor, loaded once per worker."""

    @property
    def hf_folder(self) -> str:
        """The Hugging Face folder holding the network and its image processor config."""
        return str(self.paths[0])

    @cached_property
    def processor(self) -> Any:
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(self.hf_folder, backend="pil", local_files_only=True)

    def preprocess(self, poster: Poster) -> list[torch.Tensor]:
        return [self.processor(images=poster.image, return_tensors="pt")["pixel_values"][0]]


class ClipImageEncoder(_ProcessorEncoder):
    """sentence-transformers clip-ViT-B-32, image tower: `encode(PIL image)`, 512-d, unnormalised."""

    @property
    def hf_folder(self) -> str:
        """The folder of the pipeline's one module, the Hugging Face CLIPModel (`0_CLIPModel`)."""
        modules = json.loads((self.paths[0] / "modules.json").read_text())
        if len(modules) != 1 or not modules[0]["type"].endswith("CLIPModel"):
            raise ValueError("expected a sentence-transformers pipeline of one CLIPModel module")
        return str(self.paths[0] / modules[0]["path"])

    def load(self) -> None:
        from transformers import CLIPModel

        self.network = self._place(CLIPModel.from_pretrained(self.hf_folder, local_files_only=True))
        _ = self.processor  # a broken processor config stops the run here, not poster by poster

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.network.get_image_features(pixel_values=batch).pooler_output


class ViTEncoder(_ProcessorEncoder):
    """google/vit-base-patch16-224-in21k: its image processor, then `pooler_output`, 768-d."""

    def load(self) -> None:
        from transformers import ViTModel

        self.network = self._place(ViTModel.from_pretrained(self.hf_folder, add_pooling_layer=True,
                                                            local_files_only=True))
        _ = self.processor

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.network(pixel_values=batch).pooler_output


class VGGEncoder(_ImageEncoder):
    """torchvision vgg16 (IMAGENET1K_V1) without the last classifier Linear: 4096-d after ReLU."""

    @cached_property
    def transform(self) -> Any:
        from torchvision import transforms

        return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                   transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def preprocess(self, poster: Poster) -> list[torch.Tensor]:
        return [self.transform(poster.image)]

    def load(self) -> None:
        from torchvision.models import vgg16

        with torch.device("meta"):  # no random initialisation: every weight comes from the file
            network = vgg16()
        network.load_state_dict(torch.load(self.paths[0], map_location="cpu", weights_only=True), assign=True)
        network.classifier = network.classifier[:-1]
        self.network = self._place(network)


# The spec families of the image modality (m3l.models.spec): hf-image and timm.


class _PixelEncoder(SpecEncoder):
    """Posters as the checkpoint's processor makes them, stacked and run in one forward."""

    def preprocess(self, poster: Poster) -> list[torch.Tensor]:
        return [self.transform(poster.image)]

    @abstractmethod
    def transform(self, image: Any) -> torch.Tensor:
        """An RGB PIL image → the network's input tensor."""

    def probe(self) -> torch.Tensor:
        from PIL import Image

        return self.transform(Image.new("RGB", (64, 64)))

    def embed(self, pixels: list[torch.Tensor]) -> np.ndarray:
        batch = torch.stack(pixels).to(self.device, self.dtype)
        with torch.inference_mode():
            return self.forward(batch).float().cpu().numpy()

    @abstractmethod
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """A batch of input tensors → one vector per row."""


class HFImageEncoder(_PixelEncoder):
    """hf-image: AutoImageProcessor + AutoModel; `get_image_features` where the model has one (CLIP, SigLIP)."""

    @cached_property
    def processor(self) -> Any:
        from transformers import AutoImageProcessor

        return self._from_pretrained(AutoImageProcessor.from_pretrained)

    def transform(self, image: Any) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    def load(self) -> None:
        from transformers import AutoModel

        model, loading = self._from_pretrained(AutoModel.from_pretrained, output_loading_info=True)
        self.model = model.to(self.device, self.dtype).eval()
        # A checkpoint saved without the pooler (a classifier's backbone) gets a random one: never use it.
        self.pool = self.info.option("pool")
        if self.pool == "auto" and any(".pooler." in f".{key}" for key in loading["missing_keys"]):
            self.pool = "mean"
        self.read_dim()

    def _patches(self, batch: torch.Tensor) -> int | None:
        config = getattr(self.model.config, "vision_config", self.model.config)
        size = getattr(config, "patch_size", None)
        return (batch.shape[-2] // size) * (batch.shape[-1] // size) if isinstance(size, int) else None

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, "get_image_features"):
            features = self.model.get_image_features(pixel_values=batch)
            return features if isinstance(features, torch.Tensor) else features.pooler_output
        return pooled_output(self.model(pixel_values=batch), self.pool, self._patches(batch))


class TimmEncoder(_PixelEncoder):
    """timm: `create_model("local-dir:<folder>", pretrained=True)`, its data config's eval transform, pre-logits."""

    @cached_property
    def _transform(self) -> Callable[[Any], torch.Tensor]:
        from timm.data import create_transform, resolve_data_config

        config = json.loads((self.paths[0] / "config.json").read_text())
        return create_transform(**resolve_data_config(pretrained_cfg=config.get("pretrained_cfg", {})))

    def transform(self, image: Any) -> torch.Tensor:
        return self._transform(image)

    def load(self) -> None:
        import timm

        self.model = timm.create_model(f"local-dir:{self.folder}", pretrained=True).to(self.device, self.dtype).eval()
        self.read_dim()

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(batch), pre_logits=True)
