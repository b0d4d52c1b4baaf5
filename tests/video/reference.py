"""An independent reference for the video recipes, written from docs/recipes.md (Video) only.

It does everything the plain way: decode every frame up to 30 s into a list, cut the
list into windows, pad or drop the last one, preprocess each window on its own with
torchvision's transforms, and run the model on one clip at a time. It never imports
m3l. The model builders also serve tests/video/stores.py, which saves random
weights in the publishers' formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from torch import nn
from torchvision import transforms as T

MAX_SECONDS = 30.0


def decode_all_frames(path: Path) -> list[np.ndarray]:
    """RGB uint8 [H, W, 3] frames of the first video stream while pts × time base <= 30 s.

    Like torchvision's PyAV reader, a decoding error ends the list.
    """
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        try:
            for frame in container.decode(stream):
                if float(frame.pts * stream.time_base) > MAX_SECONDS:
                    break
                frames.append(frame.to_rgb().to_ndarray())
        except av.FFmpegError:
            pass
    return frames


@dataclass
class Recipe:
    window: int
    pad_if_more_than: int | None  # None: complete windows only
    transform: T.Compose
    every_second_frame: bool = False


def _scale(video: torch.Tensor) -> torch.Tensor:
    return video / 255.0


IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
RECIPES = {
    "slowfast": Recipe(64, 32, T.Compose([T.Lambda(_scale), T.Resize(256), T.CenterCrop(256),
                                          T.Normalize([0.45] * 3, [0.225] * 3)]), every_second_frame=True),
    "mvit": Recipe(32, 16, T.Compose([T.Lambda(_scale), T.Resize((224, 224)), T.Normalize(*IMAGENET),
                                      T.CenterCrop(224)])),
    "r2p1d": Recipe(32, None, T.Compose([T.Lambda(_scale), T.Resize((128, 171)),
                                         T.Normalize([0.43216, 0.394666, 0.37645], [0.22803, 0.22145, 0.216989]),
                                         T.CenterCrop(112)])),
}


def windows(frames: list[np.ndarray], recipe: Recipe) -> list[np.ndarray]:
    """At most five consecutive windows [W, H, W, 3] from frame 0; the last one padded black or dropped."""
    result = []
    for k in range(5):
        chunk = frames[k * recipe.window:(k + 1) * recipe.window]
        if len(chunk) < recipe.window:
            if recipe.pad_if_more_than is None or len(chunk) <= recipe.pad_if_more_than:
                break
            chunk = chunk + [np.zeros_like(chunk[0])] * (recipe.window - len(chunk))
        result.append(np.stack(chunk))
    return result


def clip_of(window: np.ndarray, recipe: Recipe) -> torch.Tensor:
    """One window → the model's clip [C, T, H, W]."""
    video = torch.from_numpy(window).permute(0, 3, 1, 2).float()  # [T, C, H, W]
    if recipe.every_second_frame:
        video = video[::2]
    return recipe.transform(video).permute(1, 0, 2, 3)


def reference_clips(path: Path, model: str) -> list[torch.Tensor]:
    recipe = RECIPES[model]
    return [clip_of(window, recipe) for window in windows(decode_all_frames(path), recipe)]


# --- models --------------------------------------------------------------------------------------

def build_slowfast() -> nn.Module:
    from pytorchvideo.models.hub import slowfast_r50

    return slowfast_r50(pretrained=False)


def build_mvit() -> nn.Module:
    from pytorchvideo.models.hub import mvit_base_32x3

    return mvit_base_32x3(pretrained=False)


def build_r2p1d() -> nn.Module:
    """R(2+1)D-34 with the IG-65M changes listed in docs/recipes.md."""
    from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D, R2Plus1dStem, VideoResNet

    model = VideoResNet(block=BasicBlock, conv_makers=[Conv2Plus1D] * 4, layers=[3, 4, 6, 3],
                        stem=R2Plus1dStem, num_classes=400)
    model.layer2[0].conv2[0] = Conv2Plus1D(128, 128, 288)
    model.layer3[0].conv2[0] = Conv2Plus1D(256, 256, 576)
    model.layer4[0].conv2[0] = Conv2Plus1D(512, 512, 1152)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm3d):
            module.eps = 1e-3
            module.momentum = 0.9
    return model


BUILDERS = {"slowfast": build_slowfast, "mvit": build_mvit, "r2p1d": build_r2p1d}
STORE_PATHS = {
    "slowfast": "pytorchvideo/SLOWFAST_8x8_R50.pyth",
    "mvit": "pytorchvideo/MVIT_B_32x3_f294077834.pyth",
    "r2p1d": "ig65m/r2plus1d_34_clip32_ft_kinetics_from_ig65m-ade133f1.pth",
}


class ReferenceModel:
    """One model loaded from the store, its classifier removed, run on one clip at a time."""

    def __init__(self, name: str, store: Path) -> None:
        self.name = name
        model = BUILDERS[name]()
        checkpoint = torch.load(store / STORE_PATHS[name], map_location="cpu", weights_only=True)
        if name == "r2p1d":
            model.load_state_dict(checkpoint)
            model.fc = nn.Identity()
        else:
            model.load_state_dict(checkpoint["model_state"])
            head = model.blocks[-1] if name == "slowfast" else model.head
            head.proj = nn.Identity()
        self.model = model.eval()

    @torch.no_grad()
    def clip_vector(self, clip: torch.Tensor) -> np.ndarray:
        batch = clip.unsqueeze(0)
        if self.name == "slowfast":
            slow = batch[:, :, torch.linspace(0, 31, 8).long()]
            return self.model([slow, batch])[0].numpy()
        return self.model(batch).flatten(1)[0].numpy()

    def vector(self, path: Path) -> np.ndarray | None:
        """The trailer's vector: the mean of its clip vectors; None when no window is usable."""
        clips = reference_clips(path, self.name)
        if not clips:
            return None
        return np.mean([self.clip_vector(clip) for clip in clips], axis=0)
