"""Trailer encoders: SlowFast R50, MViT-B 32x3 and R(2+1)D-34, per docs/recipes.md (Video).

Each model is its recipe as data: window length, which frames of a window it keeps,
how short a last window may be before it is dropped rather than padded with black
frames, and the per-frame transform (scale to [0, 1], resize, crop, normalise). The
decoder hands over uint8 RGB frames (m3l.media.video); `preprocess` cuts them into
clips, which name their frames without copying them. On a GPU, `embed` moves a batch
of clips to the device as uint8 and applies the transform there, batched over each
clip's frames; on the CPU the transform runs in `preprocess`, in the loader workers,
overlapped with inference, as the device is a CPU either way. Then the model runs on
[B, C, T, H, W].
"""

from __future__ import annotations

import json
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from m3l.media.video import DecodedVideo, FramePlan, Frames
from m3l.models.base import Encoder
from m3l.models.shared import IMAGENET_MEAN, IMAGENET_STD, SpecEncoder, pooled_output

MAX_WINDOWS = 5  # clips per trailer, from frame 0
KINETICS_MEAN, KINETICS_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)
IG65M_MEAN, IG65M_STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)


@dataclass(frozen=True)
class FrameTransform:
    """A frame's recipe, applied to a stack of frames at once: scale to [0, 1], resize (bilinear,
    antialias, on the float frames), center crop, normalise.

    Where a recipe normalises before cropping, cropping first gives the same numbers (normalising
    is per pixel) on fewer pixels."""

    resize: int | tuple[int, int]  # one int: the shorter side, aspect ratio kept
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 RGB [T, H, W, 3] → float [T, 3, crop, crop], on the frames' device."""
        from torchvision.transforms.v2 import functional as F

        size = [self.resize] if isinstance(self.resize, int) else list(self.resize)
        scaled = frames.permute(0, 3, 1, 2).float().div_(255)
        return F.normalize(F.center_crop(F.resize(scaled, size, antialias=True), [self.crop]), self.mean, self.std)

    def black(self, like: torch.Tensor) -> torch.Tensor:
        """A black frame after this transform: (0 - mean) / std."""
        mean, std = (torch.tensor(v, dtype=like.dtype, device=like.device).view(-1, 1, 1) for v in (self.mean, self.std))
        return ((0 - mean) / std).expand_as(like)


@dataclass(frozen=True)
class Clip:
    """One window: rows of its trailer's frames (which every clip of the trailer shares, so they
    travel once), and the black frames that pad it to the window length."""

    frames: Frames
    rows: tuple[int, ...]
    missing: int


class VideoEncoder(Encoder):
    """Windows of `window` frames from frame 0, at most five; a trailer's vector is the mean of its clips."""

    window: int
    step: int = 1  # keep every step-th frame of a window
    min_real_frames: int  # a last window with fewer real frames is dropped, otherwise padded with black
    transform: FrameTransform

    @property
    def frame_plan(self) -> FramePlan:
        return FramePlan(self.info.name, self.window * MAX_WINDOWS, self.step)

    @property
    def transforms_on_device(self) -> bool:
        return torch.device(self.device).type != "cpu"

    def preprocess(self, video: DecodedVideo) -> list[Clip] | list[torch.Tensor]:
        clips = self.clips(video)
        return clips if self.transforms_on_device else [self.clip_tensor(clip) for clip in clips]

    def clips(self, video: DecodedVideo) -> list[Clip]:
        rows, count = video.rows[self.info.name], min(video.count, self.window * MAX_WINDOWS)
        clips = []
        for start in range(0, count, self.window):
            real = min(self.window, count - start)
            if real < self.min_real_frames:
                break
            kept = rows[start // self.step: (start + real + self.step - 1) // self.step]
            clips.append(Clip(video.frames, tuple(kept), self.window // self.step - len(kept)))
        if not clips:
            raise ValueError(f"too short for {self.info.name}: {count} frames up to 30 s, its first "
                             f"{self.window}-frame window needs at least {self.min_real_frames}")
        return clips

    @abstractmethod
    def build(self) -> nn.Module:
        """The architecture, randomly initialised."""

    def state_dict_of(self, checkpoint: dict) -> dict:
        return checkpoint

    @abstractmethod
    def drop_classifier(self, model: nn.Module) -> None:
        """Replace the classification layer by identity, so the model returns its feature."""

    def load(self) -> None:
        model = self.build()
        checkpoint = torch.load(self.paths[0], map_location="cpu", weights_only=True)
        model.load_state_dict(self.state_dict_of(checkpoint))
        self.drop_classifier(model)
        self.model = model.eval().to(self.device)

    def model_input(self, clips: torch.Tensor):
        return clips

    def clip_tensor(self, clip: Clip) -> torch.Tensor:
        """The model's clip [C, T, H, W] on the device: the transform runs there, on all its frames at once
        on a GPU, one frame at a time on the CPU, where temporaries of hundreds of MB cost more to
        allocate (fresh pages every time) than the transform saves by batching."""
        source = clip.frames.tensor
        per_pass = len(clip.rows) if self.transforms_on_device else 1
        parts = []
        for start in range(0, len(clip.rows), per_pass):
            rows = clip.rows[start:start + per_pass]
            uploaded = torch.empty((len(rows), *source.shape[1:]), dtype=torch.uint8, device=self.device)
            for index, row in enumerate(rows):
                uploaded[index].copy_(source[row])
            parts.append(self.transform(uploaded))
        frames = torch.cat(parts)
        if clip.missing:
            frames = torch.cat([frames, self.transform.black(frames[0]).expand(clip.missing, *frames.shape[1:])])
        return frames.permute(1, 0, 2, 3)  # [T, C, H, W] → [C, T, H, W]

    @torch.inference_mode()
    def embed(self, clips: list[Clip] | list[torch.Tensor]) -> np.ndarray:
        batch = torch.stack([self.clip_tensor(clip) if isinstance(clip, Clip) else clip for clip in clips])
        batch = batch.to(self.device, non_blocking=True)
        device_type = torch.device(self.device).type
        with torch.autocast(device_type, dtype=torch.float16, enabled=self.half):
            features = self.model(self.model_input(batch))
        return features.float().flatten(1).cpu().numpy()


class _PyTorchVideoEncoder(VideoEncoder):
    """PyTorchVideo model-zoo checkpoints: weights under `model_state`, head projection replaced by identity."""

    def state_dict_of(self, checkpoint: dict) -> dict:
        return checkpoint["model_state"]


class SlowFastEncoder(_PyTorchVideoEncoder):
    window, step, min_real_frames = 64, 2, 33
    transform = FrameTransform(resize=256, crop=256, mean=KINETICS_MEAN, std=KINETICS_STD)
    slow_indices = torch.linspace(0, 31, 8).long()  # 0, 4, 8, 13, 17, 22, 26, 31

    def build(self) -> nn.Module:
        from pytorchvideo.models.hub import slowfast_r50

        return slowfast_r50(pretrained=False)

    def drop_classifier(self, model: nn.Module) -> None:
        model.blocks[-1].proj = nn.Identity()  # the head's pooled 2048 slow + 256 fast channels remain

    def model_input(self, clips: torch.Tensor) -> list[torch.Tensor]:
        return [clips.index_select(2, self.slow_indices.to(clips.device)), clips]


class MViTEncoder(_PyTorchVideoEncoder):
    window, min_real_frames = 32, 17
    transform = FrameTransform(resize=(224, 224), crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)

    def build(self) -> nn.Module:
        from pytorchvideo.models.hub import mvit_base_32x3

        return mvit_base_32x3(pretrained=False)

    def drop_classifier(self, model: nn.Module) -> None:
        model.head.proj = nn.Identity()  # the class token after the final norm remains


def r2plus1d_34() -> nn.Module:
    """R(2+1)D-34 as ig65m-pytorch builds it on torchvision's VideoResNet (400-way fc)."""
    from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D, R2Plus1dStem, VideoResNet

    model = VideoResNet(block=BasicBlock, conv_makers=[Conv2Plus1D] * 4, layers=[3, 4, 6, 3],
                        stem=R2Plus1dStem, num_classes=400)
    model.layer2[0].conv2[0] = Conv2Plus1D(128, 128, 288)
    model.layer3[0].conv2[0] = Conv2Plus1D(256, 256, 576)
    model.layer4[0].conv2[0] = Conv2Plus1D(512, 512, 1152)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm3d):
            module.eps, module.momentum = 1e-3, 0.9
    return model


class R2Plus1DEncoder(VideoEncoder):
    window, min_real_frames = 32, 32
    transform = FrameTransform(resize=(128, 171), crop=112, mean=IG65M_MEAN, std=IG65M_STD)

    def build(self) -> nn.Module:
        return r2plus1d_34()

    def drop_classifier(self, model: nn.Module) -> None:
        model.fc = nn.Identity()  # the vector is the pooled 512-d output before fc


# The spec family of the video modality (m3l.models.spec): hf-video.


class _PooledVideo(nn.Module):
    """A transformers video model as the video pipeline runs one: [B, T, C, H, W] → [B, D]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return pooled_output(self.model(pixel_values=pixel_values), "auto", None)


class HFVideoEncoder(SpecEncoder, VideoEncoder):
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
