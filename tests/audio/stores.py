"""Random-weight audio models in the publishers' exact formats, written into a test model store.

whisper and ast are tiny configurations (one layer) with the real output widths, saved
as the published checkpoints are (WhisperForConditionalGeneration,
ASTForAudioClassification) next to their feature-extractor configs. VGGish is the
full network as a torchvggish state dict, and the PCA file is written as the
published one: the legacy torch pickle of a dict of numpy float64 arrays, pickled by
numpy 1 (`numpy.core` names).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from tests.audio.reference import VGG, make_layers

WHISPER = "openai/whisper-base"
AST = "MIT/ast-finetuned-audioset-10-10-0.4593"
VGGISH = "torchvggish/vggish-10086976.pth"
VGGISH_PCA = "torchvggish/vggish_pca_params-970ea276.pth"


def add_whisper(store: Path, full_size: bool = False) -> Path:
    """Tiny by default; `full_size` gives whisper-base's encoder (6 layers, 2048-wide MLP) for benchmarks."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    target = store / WHISPER
    torch.manual_seed(1)
    config = WhisperConfig(vocab_size=128, d_model=512, encoder_layers=6 if full_size else 1, decoder_layers=1,
                           encoder_attention_heads=8, decoder_attention_heads=8,
                           encoder_ffn_dim=2048 if full_size else 64,
                           decoder_ffn_dim=64, max_source_positions=1500, max_target_positions=32, num_mel_bins=80,
                           pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    WhisperForConditionalGeneration(config).save_pretrained(target)
    WhisperFeatureExtractor(feature_size=80, sampling_rate=16000).save_pretrained(target)
    return target


def add_ast(store: Path, full_size: bool = False) -> Path:
    """Tiny by default; `full_size` gives the AST-base network (12 layers, 3072-wide MLP) for benchmarks."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    target = store / AST
    torch.manual_seed(2)
    config = ASTConfig(hidden_size=768, num_hidden_layers=12 if full_size else 1, num_attention_heads=12,
                       intermediate_size=3072 if full_size else 64,
                       max_length=1024, num_mel_bins=128, num_labels=4)
    ASTForAudioClassification(config).save_pretrained(target)
    with warnings.catch_warnings():  # without torchaudio, 128 Kaldi mel bands leave some empty: expected
        warnings.simplefilter("ignore", UserWarning)
        ASTFeatureExtractor(sampling_rate=16000, num_mel_bins=128, max_length=1024).save_pretrained(target)
    return target


def _legacy_numpy1_save(obj: object, path: Path) -> None:
    """torch.save in the pre-1.6 (non-zip) format, with numpy's pre-2.0 module names, as torchvggish's files."""
    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=False, pickle_protocol=2)
    path.write_bytes(buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))


def add_vggish(store: Path) -> tuple[Path, Path]:
    """Full VGGish with He-initialised weights (activations of order one, so PCA and quantisation matter)."""
    weights, pca = store / VGGISH, store / VGGISH_PCA
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(3)
    network = VGG(make_layers())
    for module in network.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            torch.nn.init.normal_(module.bias, std=0.1)
    torch.save(network.state_dict(), weights)
    rng = np.random.default_rng(4)
    rotation, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    _legacy_numpy1_save({"pca_eigen_vectors": 0.5 * rotation, "pca_means": rng.uniform(0.5, 2.5, 128)}, pca)
    return weights, pca
