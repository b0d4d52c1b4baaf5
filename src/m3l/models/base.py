"""The contract every model implements: CPU preprocessing and a batched forward pass."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from m3l.models.info import ModelInfo


class Encoder(ABC):
    """One pretrained model.

    An engine constructs an encoder, hands `preprocess` to loader workers (so it
    must not touch the weights), then calls `load` once and `embed` per batch.
    An item's vector is the mean of the vectors of the samples `preprocess` made
    from it (one sample per item except for video clips).
    """

    def __init__(self, info: ModelInfo, paths: list[Path], device: str = "cpu", precision: str = "auto") -> None:
        self.info = info
        self.paths = paths
        self.device = device
        self.precision = precision

    @property
    def half(self) -> bool:
        """Whether to run in float16: --precision fp16, or auto (and tf32) on CUDA where the model's recipe
        ran fp16."""
        if self.precision in ("auto", "tf32"):
            return self.info.auto_precision == "fp16" and self.device.startswith("cuda")
        return self.precision == "fp16"

    @property
    def arithmetic(self) -> str:
        """What the vectors are computed in, as provenance records it: fp16, tf32 (CUDA only) or fp32."""
        if self.half:
            return "fp16"
        return "tf32" if self.precision == "tf32" and self.device.startswith("cuda") else "fp32"

    def preprocess(self, media: Any) -> list[Any]:
        """Decoded media of one item → its samples. Runs in loader workers."""
        return [media]

    @abstractmethod
    def load(self) -> None:
        """Load the weights onto `self.device`."""

    @abstractmethod
    def embed(self, samples: list[Any]) -> np.ndarray:
        """A batch of samples → float32 array of shape (len(samples), info.dim)."""


def use_precision(precision: str) -> None:
    """TF32 for convolutions and matmuls on Ampere and newer GPUs only for --precision tf32 and fp16,
    the opt-in fast paths: the recipes' vectors were computed in full fp32 (CPU, or cuDNN off), and
    cuDNN's default TF32 puts them about 1e-3 off. Float16 autocast, where a recipe names it
    (Whisper, AST on CUDA), is the encoder's own. Process-wide, as torch's flags are."""
    import torch

    fast = precision in ("tf32", "fp16")
    torch.backends.cudnn.allow_tf32 = fast
    torch.backends.cuda.matmul.allow_tf32 = fast
