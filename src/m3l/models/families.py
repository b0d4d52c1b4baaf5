"""Encoders of the model-spec families (m3l.models.spec): any checkpoint of a library, not one recipe.

Preprocessing is the checkpoint's own, as the installed library gives it by default
(no pinned backend: spec models have no published vectors to match). Each encoder
reads its dimension from the model once loaded, by embedding one probe sample, and
records it in `self.info`; the engine checks every vector against it.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import nn

from m3l.media.audio import SAMPLE_RATE, Soundtrack
from m3l.media.image import Poster
from m3l.models.base import Encoder
from m3l.models.shared import IMAGENET_MEAN, IMAGENET_STD, half_precision, quiet_transformers
from m3l.models.spec import SpecInfo
from m3l.models.text import SentenceTransformerEncoder, tokenized_part
from m3l.models.video import FrameTransform, VideoEncoder


class _SpecEncoder(Encoder):
    info: SpecInfo

    @property
    def folder(self) -> str:
        return str(self.paths[0])

    @property
    def dtype(self) -> torch.dtype:
        return torch.float16 if self.half else torch.float32

    @abstractmethod
    def probe(self) -> Any:
        """One sample `embed` accepts, to read the output dimension."""

    def read_dim(self) -> None:
        self.info = self.info.with_dim(int(self.embed([self.probe()]).shape[1]))

    def _from_pretrained(self, loader: Callable[..., Any], **kwargs: Any) -> Any:
        with quiet_transformers():
            return loader(self.folder, local_files_only=True, **kwargs)


class STEncoder(_SpecEncoder, SentenceTransformerEncoder):
    """st: `SentenceTransformer(folder).encode`, as the twelve's text models run."""

    def probe(self) -> str:
        return "probe"

    def load(self) -> None:
        SentenceTransformerEncoder.load(self)
        self.read_dim()


def mean_over_mask(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of `states` [B, N, D] over the positions where `mask` [B, N] is 1."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


class HFTextEncoder(_SpecEncoder):
    """hf-text: AutoTokenizer (padding, truncation at its maximum) + AutoModel; mean over real tokens, or CLS."""

    def probe(self) -> str:
        return "probe"

    def load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = self._from_pretrained(AutoTokenizer.from_pretrained)
        self.model = self._from_pretrained(AutoModel.from_pretrained).to(self.device, self.dtype).eval()
        self.read_dim()

    def embed(self, plots: list[str]) -> np.ndarray:
        plots = [tokenized_part(plot, self.tokenizer, self.tokenizer.model_max_length) for plot in plots]
        batch = self.tokenizer(plots, padding=True, truncation=True, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            states = self.model(**batch).last_hidden_state
        pooled = states[:, 0] if self.info.option("pool") == "cls" else mean_over_mask(states, batch["attention_mask"])
        return pooled.float().cpu().numpy()


class _PixelEncoder(_SpecEncoder):
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


def pooled_output(outputs: Any, pool: str, patches: int | None) -> torch.Tensor:
    """`pooler_output` unless `pool` says otherwise (or the model has none); `cls`: the first token;
    `mean`: the mean of the last `patches` tokens (all of them when unknown), or over the
    spatial axes of a convolutional [B, C, H, W] map."""
    states = outputs.last_hidden_state
    if pool == "auto" and getattr(outputs, "pooler_output", None) is not None:
        return outputs.pooler_output.flatten(1)
    if states.dim() == 4:
        return states.mean(dim=(2, 3))
    if pool == "cls":
        return states[:, 0]
    return states[:, -patches:].mean(1) if patches else states.mean(1)


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


class HFAudioEncoder(_SpecEncoder):
    """hf-audio: AutoFeatureExtractor on the recipe's waveform at the extractor's `sampling_rate` + AutoModel (its encoder, for
    encoder-decoder models such as Whisper); mean over time of the last hidden state, or the
    model's audio embedding (`get_audio_features`, CLAP-style)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from transformers import AutoFeatureExtractor

        # Made in the main process, so that forked loader workers inherit it ready.
        self.extractor = self._from_pretrained(AutoFeatureExtractor.from_pretrained)
        self.sample_rate: int = getattr(self.extractor, "sampling_rate", SAMPLE_RATE)  # asked by the audio loader

    def preprocess(self, soundtrack: Soundtrack) -> list[dict[str, np.ndarray]]:
        return [self.features(soundtrack.at(self.sample_rate))]

    def features(self, waveform: np.ndarray) -> dict[str, np.ndarray]:
        arrays = self.extractor(waveform, sampling_rate=self.sample_rate, return_tensors="np")
        return {key: value[0] for key, value in arrays.items()}

    def probe(self) -> dict[str, np.ndarray]:
        return self.features(np.zeros(self.sample_rate, dtype=np.float32))

    def load(self) -> None:
        from transformers import AutoModel

        model = self._from_pretrained(AutoModel.from_pretrained)
        self.audio_features = getattr(model, "get_audio_features", None)
        if self.audio_features is None and model.config.is_encoder_decoder:
            model = model.get_encoder()
        self.model = model.to(self.device).eval()
        self.read_dim()

    def embed(self, samples: list[dict[str, np.ndarray]]) -> np.ndarray:
        """Samples of equal shapes run together (shorter soundtracks are never padded into longer ones)."""
        vectors: list[np.ndarray | None] = [None] * len(samples)
        groups: dict[tuple, list[int]] = {}
        for index, sample in enumerate(samples):
            groups.setdefault(tuple((key, value.shape) for key, value in sample.items()), []).append(index)
        for rows in groups.values():
            batch = {key: torch.from_numpy(np.stack([samples[i][key] for i in rows])).to(self.device)
                     for key in samples[rows[0]]}
            for row, vector in zip(rows, self._forward(batch)):
                vectors[row] = vector
        return np.stack(vectors)

    def _forward(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        with torch.inference_mode(), half_precision(self):
            if self.audio_features is not None:
                features = self.audio_features(**batch)
                pooled = features if isinstance(features, torch.Tensor) else features.pooler_output
            else:
                pooled = self.model(**batch).last_hidden_state.mean(dim=1)
        return pooled.float().cpu().numpy()


class _PooledVideo(nn.Module):
    """A transformers video model as the video pipeline runs one: [B, T, C, H, W] → [B, D]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return pooled_output(self.model(pixel_values=pixel_values), "auto", None)


class HFVideoEncoder(_SpecEncoder, VideoEncoder):
    """hf-video: AutoModel over windows of its `num_frames` (at most five from frame 0, a last window
    of fewer than half real frames dropped, else padded with black), each frame resized, cropped and
    normalised as its image processor config says; pooler output or the mean of the tokens; the
    trailer's vector is the mean of its clips. Frames come from the shared early-stop decode."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config = json.loads((self.paths[0] / "config.json").read_text())
        self.window = int(config.get("num_frames", 8))
        self.min_real_frames = self.window // 2 + 1
        self.transform = self._frame_transform(json.loads((self.paths[0] / "preprocessor_config.json").read_text()))

    @staticmethod
    def _frame_transform(processor: dict) -> FrameTransform:
        size, crop = processor.get("size", 224), processor.get("crop_size", processor.get("size", 224))
        if isinstance(size, dict):
            size = size.get("shortest_edge") or (size["height"], size["width"])
        if isinstance(crop, dict):
            crop = crop.get("height") or crop.get("shortest_edge")
        if not processor.get("do_center_crop", True):
            crop = min(size) if isinstance(size, tuple) else size
        return FrameTransform(resize=size, crop=int(crop), mean=tuple(processor.get("image_mean", IMAGENET_MEAN)),
                              std=tuple(processor.get("image_std", IMAGENET_STD)))

    def probe(self) -> torch.Tensor:
        return torch.zeros(3, self.window, self.transform.crop, self.transform.crop)

    def build(self) -> nn.Module:
        from transformers import AutoModel

        return _PooledVideo(self._from_pretrained(AutoModel.from_pretrained))

    def drop_classifier(self, model: nn.Module) -> None:
        """AutoModel is the backbone: no classifier."""

    def load(self) -> None:
        self.model = self.build().eval().to(self.device)
        self.read_dim()

    def model_input(self, clips: torch.Tensor) -> torch.Tensor:
        return clips.permute(0, 2, 1, 3, 4)  # [B, C, T, H, W] → [B, T, C, H, W]
