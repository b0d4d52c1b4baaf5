"""Plot encoders: sentence-transformers models, per docs/recipes.md (defaults, no extra normalisation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from m3l.models.base import Encoder
from m3l.models.shared import SpecEncoder

# The first plot prefix tried holds this many characters per token kept; each later one four times more.
CHARACTERS_PER_TOKEN = 16


class SentenceTransformerEncoder(Encoder):
    """minilm, mpnet, and the text tower of clip-ViT-B-32."""

    def load(self) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(self.paths[0]), device=self.device, local_files_only=True)
        if self.info.max_seq_length:
            self.model.max_seq_length = self.info.max_seq_length
        if self.half:
            self.model.half()

    def embed(self, plots: list[str]) -> np.ndarray:
        plots = [tokenized_part(plot, self.model.tokenizer, self.model.max_seq_length) for plot in plots]
        vectors = self.model.encode(plots, batch_size=len(plots), convert_to_numpy=True, show_progress_bar=False)
        return vectors.astype(np.float32, copy=False)


def tokenized_part(plot: str, tokenizer: Any, max_tokens: int | None) -> str:
    """The start of `plot` whose first `max_tokens` tokens are those of the whole plot: only they
    count, and a 45 MB plot tokenised whole costs gigabytes and a minute.

    A prefix is kept once its tokens before its last word are `max_tokens` or more. Those tokens
    are the whole plot's: a fast tokenizer normalises each character on its own (composition
    aside, which stays within a word), splits words left to right (at whitespace, punctuation and,
    for BERT, each CJK ideograph) and tokenises each word alone, so a cut can change only the word
    it falls in. A plot without such a prefix (one endless word), and a tokenizer that cannot say
    which word a token comes from, get the whole plot.
    """
    if not max_tokens or not getattr(tokenizer, "is_fast", False):
        return plot
    size = max_tokens * CHARACTERS_PER_TOKEN
    while size < len(plot):
        words = tokenizer(plot[:size], add_special_tokens=False, verbose=False).word_ids()
        if words and sum(word != words[-1] for word in words) >= max_tokens:
            return plot[:size]
        size *= 4
    return plot


# The spec families of the text modality (m3l.models.spec): st and hf-text.


class STEncoder(SpecEncoder, SentenceTransformerEncoder):
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


class HFTextEncoder(SpecEncoder):
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
