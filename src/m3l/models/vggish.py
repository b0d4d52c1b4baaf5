"""VGGish with the AudioSet post-processing, from the two files harritaylor/torchvggish publishes.

Per docs/recipes.md (Audio): the VGGish log-mel front end (25 ms periodic-Hann windows,
10 ms hop, 512-point FFT magnitude, 64 mel bands 125-7500 Hz, log(mel + 0.01)),
non-overlapping 0.96 s examples of 96 × 64, the VGG network, then PCA with the
published matrix and means, clipping to [-2, 2] and quantisation to 0-255. A
trailer's vector is the mean over its examples; all zeros when it has none.
tests/audio proves the front end and post-processing equal to torchvggish's.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
from numpy._core.multiarray import _reconstruct
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

from m3l.media.audio import SAMPLE_RATE, Soundtrack
from m3l.models.audio import AudioEncoder

WINDOW_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
FFT_LENGTH = 512
MEL_BANDS = 64
MEL_LOW_HZ, MEL_HIGH_HZ = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s of 10 ms frames
EMBEDDING_SIZE = 128
QUANTISE_LOW, QUANTISE_HIGH = -2.0, 2.0
EXAMPLES_PER_FORWARD = 128  # bounds the activation memory of one VGG pass
# A stream that breaks part-way is kept when one complete example decoded: 0.975 s.
MIN_PARTIAL_SAMPLES = (EXAMPLE_FRAMES - 1) * HOP_SAMPLES + WINDOW_SAMPLES


def _hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(hertz) / 700.0)


@cache
def mel_weights() -> np.ndarray:
    """(257 FFT bins, 64 bands): triangles evenly spaced on the mel scale; the DC bin weighs nothing."""
    bins_mel = _hertz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, FFT_LENGTH // 2 + 1))[:, None]
    edges = np.linspace(_hertz_to_mel(MEL_LOW_HZ), _hertz_to_mel(MEL_HIGH_HZ), MEL_BANDS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel - lower) / (centre - lower)
    falling = (upper - bins_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0
    return weights


@cache
def _periodic_hann() -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi / WINDOW_SAMPLES * np.arange(WINDOW_SAMPLES))


def log_mel_examples(waveform: np.ndarray) -> np.ndarray:
    """A 16 kHz mono waveform → its complete 0.96 s examples, float32 (n, 96, 64); n may be 0."""
    if len(waveform) < WINDOW_SAMPLES:
        return np.zeros((0, EXAMPLE_FRAMES, MEL_BANDS), np.float32)
    frames = sliding_window_view(np.asarray(waveform, np.float64), WINDOW_SAMPLES)[::HOP_SAMPLES]
    magnitudes = np.abs(np.fft.rfft(frames * _periodic_hann(), FFT_LENGTH))
    log_mel = np.log(magnitudes @ mel_weights() + LOG_OFFSET)
    count = len(log_mel) // EXAMPLE_FRAMES
    return log_mel[: count * EXAMPLE_FRAMES].reshape(count, EXAMPLE_FRAMES, MEL_BANDS).astype(np.float32)


def _vgg_features() -> nn.Sequential:
    """Conv stack with torchvggish's module indices (its state-dict keys depend on them)."""
    layers: list[nn.Module] = []
    channels = 1
    for width in (64, "pool", 128, "pool", 256, 256, "pool", 512, 512, "pool"):
        if width == "pool":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*layers)


class VGGish(nn.Module):
    """(n, 1, 96, 64) log-mel examples → (n, 128) raw embeddings, as torchvggish's VGG."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _vgg_features()
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True),
            nn.Linear(4096, 4096), nn.ReLU(True),
            nn.Linear(4096, EMBEDDING_SIZE), nn.ReLU(True),
        )

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        maps = self.features(examples)  # (n, 512, 6, 4)
        # Flatten channels last, as the TensorFlow original that the weights come from.
        return self.embeddings(maps.permute(0, 2, 3, 1).flatten(1))


class AudioSetPostprocessor(nn.Module):
    """PCA with the published matrix and means, clip to [-2, 2], quantise to integers 0-255 (as floats)."""

    def __init__(self, eigen_vectors: torch.Tensor, means: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("eigen_vectors", eigen_vectors)
        self.register_buffer("means", means.reshape(1, -1))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        projected = (embeddings - self.means) @ self.eigen_vectors.T
        clipped = projected.clamp(QUANTISE_LOW, QUANTISE_HIGH)
        return torch.round((clipped - QUANTISE_LOW) * (255.0 / (QUANTISE_HIGH - QUANTISE_LOW)))


# What a pickled numpy array needs, under the name numpy 1 (the published file) and numpy 2 wrote.
_NUMPY_PICKLE_GLOBALS = [(_reconstruct, "numpy.core.multiarray._reconstruct"),
                         (_reconstruct, "numpy._core.multiarray._reconstruct"), np.ndarray, np.dtype,
                         np.dtypes.Float64DType, np.dtypes.Float32DType]


def load_pca(path: Path) -> AudioSetPostprocessor:
    """The published PCA file: a dict of `pca_eigen_vectors` (128 × 128) and `pca_means` (128), numpy or torch."""
    with torch.serialization.safe_globals(_NUMPY_PICKLE_GLOBALS):
        params = torch.load(path, map_location="cpu", weights_only=True)
    as_float = lambda name: torch.as_tensor(np.asarray(params[name]), dtype=torch.float32)  # noqa: E731
    return AudioSetPostprocessor(as_float("pca_eigen_vectors"), as_float("pca_means"))



class VGGishEncoder(AudioEncoder):
    """One sample per trailer: all its examples; `embed` runs them through VGGish and averages per trailer."""

    min_partial_samples = MIN_PARTIAL_SAMPLES

    def preprocess(self, soundtrack: Soundtrack) -> list[np.ndarray]:
        return [log_mel_examples(soundtrack.waveform)]

    def load(self) -> None:
        with torch.device("meta"):  # no random initialisation of 72 M weights about to be replaced
            network = VGGish()
        network.load_state_dict(torch.load(self.paths[0], map_location="cpu", weights_only=True), assign=True)
        self.network = network.to(self.device).eval()
        self.postprocess = load_pca(self.paths[1]).to(self.device)

    def embed(self, trailers: list[np.ndarray]) -> np.ndarray:
        vectors = np.zeros((len(trailers), EMBEDDING_SIZE), np.float32)
        counts = [len(examples) for examples in trailers]
        if not any(counts):
            return vectors
        examples = torch.from_numpy(np.concatenate(trailers))[:, None]
        with torch.inference_mode():
            codes = torch.cat([self.postprocess(self.network(chunk.to(self.device)))
                               for chunk in examples.split(EXAMPLES_PER_FORWARD)]).cpu()
        for row, per_trailer in enumerate(codes.split(counts)):
            if len(per_trailer):
                vectors[row] = per_trailer.mean(dim=0).numpy()
        return vectors
