"""The audio recipes of docs/recipes.md, written out plainly and independently of m3l.

Each function decodes the trailer itself and runs one model on one trailer, as the
original scripts did. The VGGish part follows harritaylor/torchvggish's own code
structure (vggish_params, mel_features, vggish_input, VGG + Postprocessor), written
from that published reference so that the project's vectorised front end can be
proved equal to it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
THIRTY_SECONDS = 480000


# --- waveform ------------------------------------------------------------------------------

def decode_waveform(path: Path | str, rate: int = SAMPLE_RATE) -> np.ndarray:
    """First audio stream → FFmpeg down-mix and resample to mono `rate` Hz, frame by frame, first 30 s."""
    import av

    container = av.open(str(path))
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
    pieces, total = [], 0
    for frame in container.decode(audio=0):
        frame.pts = None
        for out in resampler.resample(frame):
            pieces.append(out.to_ndarray().reshape(-1))
            total += out.samples
        if total >= 30 * rate:
            break
    container.close()
    return np.concatenate(pieces)[:30 * rate]


# --- whisper and AST -----------------------------------------------------------------------

@cache
def _whisper(folder: Path):
    from transformers import WhisperFeatureExtractor, WhisperModel

    return WhisperFeatureExtractor.from_pretrained(str(folder)), WhisperModel.from_pretrained(str(folder)).eval()


@cache
def _ast(folder: Path):
    from transformers import ASTFeatureExtractor, ASTModel

    return ASTFeatureExtractor.from_pretrained(str(folder)), ASTModel.from_pretrained(str(folder)).eval()


def whisper_vector(folder: Path, trailer: Path) -> np.ndarray:
    extractor, model = _whisper(folder)
    inputs = extractor(decode_waveform(trailer), sampling_rate=SAMPLE_RATE, padding="max_length",
                       max_length=THIRTY_SECONDS, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.encoder(inputs.input_features).last_hidden_state
    return hidden.mean(dim=1)[0].numpy()


def ast_vector(folder: Path, trailer: Path) -> np.ndarray:
    extractor, model = _ast(folder)
    inputs = extractor(decode_waveform(trailer), sampling_rate=SAMPLE_RATE, return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).pooler_output[0].numpy()


# --- VGGish: torchvggish's vggish_params ---------------------------------------------------

NUM_FRAMES = 96
NUM_BANDS = 64
EMBEDDING_SIZE = 128
STFT_WINDOW_LENGTH_SECONDS = 0.025
STFT_HOP_LENGTH_SECONDS = 0.010
NUM_MEL_BINS = NUM_BANDS
MEL_MIN_HZ = 125
MEL_MAX_HZ = 7500
LOG_OFFSET = 0.01
EXAMPLE_WINDOW_SECONDS = 0.96
EXAMPLE_HOP_SECONDS = 0.96
QUANTIZE_MIN_VAL = -2.0
QUANTIZE_MAX_VAL = +2.0


# --- VGGish: torchvggish's mel_features ----------------------------------------------------

def frame(data: np.ndarray, window_length: int, hop_length: int) -> np.ndarray:
    num_samples = data.shape[0]
    num_frames = 1 + int(np.floor((num_samples - window_length) / hop_length))
    shape = (num_frames, window_length) + data.shape[1:]
    strides = (data.strides[0] * hop_length,) + data.strides
    return np.lib.stride_tricks.as_strided(data, shape=shape, strides=strides)


def periodic_hann(window_length: int) -> np.ndarray:
    return 0.5 - (0.5 * np.cos(2 * np.pi / window_length * np.arange(window_length)))


def stft_magnitude(signal, fft_length, hop_length=None, window_length=None):
    frames = frame(signal, window_length, hop_length)
    window = periodic_hann(window_length)
    windowed_frames = frames * window
    return np.abs(np.fft.rfft(windowed_frames, int(fft_length)))


_MEL_BREAK_FREQUENCY_HERTZ = 700.0
_MEL_HIGH_FREQUENCY_Q = 1127.0


def hertz_to_mel(frequencies_hertz):
    return _MEL_HIGH_FREQUENCY_Q * np.log(1.0 + (frequencies_hertz / _MEL_BREAK_FREQUENCY_HERTZ))


def spectrogram_to_mel_matrix(num_mel_bins=20, num_spectrogram_bins=129, audio_sample_rate=8000,
                              lower_edge_hertz=125.0, upper_edge_hertz=3800.0):
    nyquist_hertz = audio_sample_rate / 2.0
    assert 0.0 <= lower_edge_hertz < upper_edge_hertz <= nyquist_hertz
    spectrogram_bins_hertz = np.linspace(0.0, nyquist_hertz, num_spectrogram_bins)
    spectrogram_bins_mel = hertz_to_mel(spectrogram_bins_hertz)
    band_edges_mel = np.linspace(hertz_to_mel(lower_edge_hertz), hertz_to_mel(upper_edge_hertz), num_mel_bins + 2)
    mel_weights_matrix = np.empty((num_spectrogram_bins, num_mel_bins))
    for i in range(num_mel_bins):
        lower_edge_mel, center_mel, upper_edge_mel = band_edges_mel[i:i + 3]
        lower_slope = (spectrogram_bins_mel - lower_edge_mel) / (center_mel - lower_edge_mel)
        upper_slope = (upper_edge_mel - spectrogram_bins_mel) / (upper_edge_mel - center_mel)
        mel_weights_matrix[:, i] = np.maximum(0.0, np.minimum(lower_slope, upper_slope))
    mel_weights_matrix[0, :] = 0.0  # HTK excludes the spectrogram DC bin
    return mel_weights_matrix


def log_mel_spectrogram(data, audio_sample_rate=8000, log_offset=0.0, window_length_secs=0.025,
                        hop_length_secs=0.010, **kwargs):
    window_length_samples = int(round(audio_sample_rate * window_length_secs))
    hop_length_samples = int(round(audio_sample_rate * hop_length_secs))
    fft_length = 2 ** int(np.ceil(np.log(window_length_samples) / np.log(2.0)))
    spectrogram = stft_magnitude(data, fft_length=fft_length, hop_length=hop_length_samples,
                                 window_length=window_length_samples)
    mel_spectrogram = np.dot(spectrogram, spectrogram_to_mel_matrix(
        num_spectrogram_bins=spectrogram.shape[1], audio_sample_rate=audio_sample_rate, **kwargs))
    return np.log(mel_spectrogram + log_offset)


# --- VGGish: torchvggish's vggish_input ----------------------------------------------------

def waveform_to_examples(data: np.ndarray, sample_rate: int) -> torch.Tensor:
    if len(data.shape) > 1:
        data = np.mean(data, axis=1)
    assert sample_rate == SAMPLE_RATE  # the recipe resamples with FFmpeg before VGGish
    log_mel = log_mel_spectrogram(data, audio_sample_rate=SAMPLE_RATE, log_offset=LOG_OFFSET,
                                  window_length_secs=STFT_WINDOW_LENGTH_SECONDS,
                                  hop_length_secs=STFT_HOP_LENGTH_SECONDS, num_mel_bins=NUM_MEL_BINS,
                                  lower_edge_hertz=MEL_MIN_HZ, upper_edge_hertz=MEL_MAX_HZ)
    features_sample_rate = 1.0 / STFT_HOP_LENGTH_SECONDS
    example_window_length = int(round(EXAMPLE_WINDOW_SECONDS * features_sample_rate))
    example_hop_length = int(round(EXAMPLE_HOP_SECONDS * features_sample_rate))
    log_mel_examples = frame(log_mel, window_length=example_window_length, hop_length=example_hop_length)
    return torch.tensor(log_mel_examples)[:, None, :, :].float()


# --- VGGish: torchvggish's vggish (VGG, Postprocessor) -------------------------------------

class VGG(nn.Module):
    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True),
            nn.Linear(4096, 4096), nn.ReLU(True),
            nn.Linear(4096, 128), nn.ReLU(True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        # Transpose the output from features to remain compatible with vggish embeddings.
        x = torch.transpose(x, 1, 3)
        x = torch.transpose(x, 1, 2)
        x = x.contiguous()
        x = x.view(x.size(0), -1)
        return self.embeddings(x)


def make_layers() -> nn.Sequential:
    layers = []
    in_channels = 1
    for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M"]:
        if v == "M":
            layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


class Postprocessor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pca_eigen_vectors = nn.Parameter(torch.empty((EMBEDDING_SIZE, EMBEDDING_SIZE)), requires_grad=False)
        self.pca_means = nn.Parameter(torch.empty((EMBEDDING_SIZE, 1)), requires_grad=False)

    def forward(self, embeddings_batch: torch.Tensor) -> torch.Tensor:
        assert len(embeddings_batch.shape) == 2
        pca_applied = torch.mm(self.pca_eigen_vectors, (embeddings_batch.t() - self.pca_means)).t()
        clipped_embeddings = torch.clamp(pca_applied, QUANTIZE_MIN_VAL, QUANTIZE_MAX_VAL)
        quantized_embeddings = torch.round(
            (clipped_embeddings - QUANTIZE_MIN_VAL) * (255.0 / (QUANTIZE_MAX_VAL - QUANTIZE_MIN_VAL)))
        return torch.squeeze(quantized_embeddings)


@cache
def load_vggish(weights: Path, pca: Path) -> tuple[VGG, Postprocessor]:
    """As torchvggish's VGGish(pretrained=True) loads its two files."""
    vgg = VGG(make_layers())
    vgg.load_state_dict(torch.load(weights, map_location="cpu"))
    state_dict = torch.load(pca, map_location="cpu", weights_only=False)
    state_dict["pca_eigen_vectors"] = torch.as_tensor(state_dict["pca_eigen_vectors"], dtype=torch.float)
    state_dict["pca_means"] = torch.as_tensor(state_dict["pca_means"].reshape(-1, 1), dtype=torch.float)
    postprocessor = Postprocessor()
    postprocessor.load_state_dict(state_dict)
    return vgg.eval(), postprocessor.eval()


def vggish_codes(weights: Path, pca: Path, waveform: np.ndarray) -> torch.Tensor:
    """Per-example quantised embeddings (n, 128) of a 16 kHz waveform: torchvggish's forward."""
    vgg, postprocessor = load_vggish(weights, pca)
    examples = waveform_to_examples(waveform, SAMPLE_RATE)
    with torch.no_grad():
        return postprocessor(vgg(examples)).reshape(-1, EMBEDDING_SIZE)


def vggish_vector(weights: Path, pca: Path, trailer: Path) -> np.ndarray:
    """Mean over examples (the recipe's fix of the original's one-example bug); zeros with no example."""
    waveform = decode_waveform(trailer)
    if len(waveform) < int(EXAMPLE_WINDOW_SECONDS * SAMPLE_RATE) + 240:  # fewer than 96 STFT frames
        return np.zeros(EMBEDDING_SIZE, np.float32)
    return vggish_codes(weights, pca, waveform).mean(dim=0).numpy()
