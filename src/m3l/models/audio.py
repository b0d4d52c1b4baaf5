"""Whisper and AST soundtrack encoders through `transformers`, per docs/recipes.md (Audio).

Both take the shared 16 kHz waveform; their feature extractors run in the loader
workers (`preprocess`), the networks run batched on the device (`embed`).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
import torch

from m3l.media.audio import MAX_SAMPLES, SAMPLE_RATE, Soundtrack
from m3l.models.base import Encoder
from m3l.models.shared import SpecEncoder, half_precision, quiet_transformers


class AudioEncoder(Encoder):
    """An encoder of trailer soundtracks, and what the audio loader (m3l.media.audio.loader_for) asks of it."""

    sample_rate: int = SAMPLE_RATE  # the rate its `preprocess` takes the waveform at (Soundtrack.at)
    min_partial_samples: int = 1  # a stream broken part-way is kept when at least this much decoded


class _TransformersAudioEncoder(AudioEncoder):
    """A Hugging Face audio model stored as a folder: feature extractor + network."""

    model_class: str  # the transformers class loaded from the store folder
    extractor_class: str

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Made here, in the main process, so that forked loader workers inherit it (and transformers) ready.
        import transformers

        with quiet_transformers():
            self.extractor = getattr(transformers, self.extractor_class).from_pretrained(
                str(self.paths[0]), local_files_only=True)

    def preprocess(self, soundtrack: Soundtrack) -> list[np.ndarray]:
        return [self.features(soundtrack.waveform)]

    @abstractmethod
    def features(self, waveform: np.ndarray) -> np.ndarray:
        """One waveform → the network's input array (no batch axis)."""

    def network(self, model: torch.nn.Module) -> torch.nn.Module:
        """The part of the loaded model that runs."""
        return model

    @abstractmethod
    def pool(self, outputs: Any) -> torch.Tensor:
        """The network's outputs → one vector per batch row."""

    def load(self) -> None:
        import transformers

        with quiet_transformers():
            model = getattr(transformers, self.model_class).from_pretrained(str(self.paths[0]), local_files_only=True)
        self.model = self.network(model).to(self.device).eval()

    def embed(self, features: list[np.ndarray]) -> np.ndarray:
        batch = torch.from_numpy(np.stack(features)).to(self.device)
        with torch.inference_mode(), half_precision(self):
            vectors = self.pool(self.model(batch))
        return vectors.float().cpu().numpy()


class WhisperEncoder(_TransformersAudioEncoder):
    """openai/whisper-base: log-mel 80 × 3000 of the first 30 s; encoder states averaged over time (512)."""

    model_class = "WhisperModel"
    extractor_class = "WhisperFeatureExtractor"

    def features(self, waveform: np.ndarray) -> np.ndarray:
        return self.extractor(waveform, sampling_rate=SAMPLE_RATE, padding="max_length", max_length=MAX_SAMPLES,
                              truncation=True, return_tensors="np").input_features[0]

    def network(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.get_encoder()  # the decoder is never used

    def pool(self, outputs: Any) -> torch.Tensor:
        return outputs.last_hidden_state.mean(dim=1)


class ASTEncoder(_TransformersAudioEncoder):
    """MIT/ast-finetuned-audioset-10-10-0.4593: 1024 fbank frames (about 10.24 s); `pooler_output` (768)."""

    model_class = "ASTModel"
    extractor_class = "ASTFeatureExtractor"
    FRAME_LENGTH, FRAME_SHIFT = 400, 160  # 25 ms / 10 ms at 16 kHz, fixed by the extractor

    def features(self, waveform: np.ndarray) -> np.ndarray:
        # Frames are computed independently and truncated to max_length, so the samples past
        # the last kept frame cannot change the result: leave them out of the spectrogram.
        needed = (self.extractor.max_length - 1) * self.FRAME_SHIFT + self.FRAME_LENGTH
        return self.extractor(waveform[:needed], sampling_rate=SAMPLE_RATE, return_tensors="np").input_values[0]

    def pool(self, outputs: Any) -> torch.Tensor:
        return outputs.pooler_output


# The spec family of the audio modality (m3l.models.spec): hf-audio.


class HFAudioEncoder(SpecEncoder, AudioEncoder):
    """hf-audio: AutoFeatureExtractor on the recipe's waveform at the extractor's `sampling_rate` + AutoModel (its encoder, for
    encoder-decoder models such as Whisper); mean over time of the last hidden state, or the
    model's audio embedding (`get_audio_features`, CLAP-style)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from transformers import AutoFeatureExtractor

        # Made in the main process, so that forked loader workers inherit it ready.
        self.extractor = self._from_pretrained(AutoFeatureExtractor.from_pretrained)
        self.sample_rate = getattr(self.extractor, "sampling_rate", SAMPLE_RATE)

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
