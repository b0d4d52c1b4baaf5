"""Plot encoders: sentence-transformers models, per docs/recipes.md (defaults, no extra normalisation)."""

from __future__ import annotations

import numpy as np

from m3l.models.base import Encoder


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
        vectors = self.model.encode(plots, batch_size=len(plots), convert_to_numpy=True, show_progress_bar=False)
        return vectors.astype(np.float32, copy=False)
