"""Torch helpers every modality's encoders share: precision, quiet loading, ImageNet normalisation,
pooling, and the base of the spec families' encoders (each family lives beside its modality's recipes).

Imported by the encoder modules only (they need torch); the model table never imports this.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import torch

from m3l.models.base import Encoder
from m3l.models.spec import SpecInfo

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def half_precision(encoder: Encoder) -> AbstractContextManager:
    """float16 autocast when the encoder runs in half precision (`Encoder.half`); a no-op otherwise."""
    return torch.autocast(device_type=encoder.device.split(":")[0], dtype=torch.float16, enabled=encoder.half)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Loading without the report of the published checkpoints' unused heads, progress bars, or the
    AST extractor's notice that some of its 128 Kaldi mel filters are empty at 16 kHz (they are, by design)."""
    import transformers

    verbosity, bars = transformers.logging.get_verbosity(), transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
            yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:  # off in a log (m3l.progress), where turning them on again is a warning
            transformers.logging.enable_progress_bar()


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


class SpecEncoder(Encoder):
    """The base of every spec family's encoder: a checkpoint folder loaded through its library, its
    dimension read from the loaded model (`read_dim`, by embedding one `probe` sample)."""


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
