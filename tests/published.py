"""Look-alikes of the published M3L features (giuspillo/M3L_10M_20M, `features_json_format/`), generated:
per movie `{"<id>": [...]}` pretty-printed with a 4-space indent, no trailing newline, the float32
values written as float64 text, under the published folder names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TOP = "features_json_format"
PUBLISHED = {  # model → its folder under features_json_format/, as the repository names them
    "minilm": "1_text_feat/minilm", "mpnet": "1_text_feat/mpnet", "clip-text": "1_text_feat/clip-text",
    "clip-image": "2_image_feat/clip-image", "vit": "2_image_feat/vit", "vgg": "2_image_feat/vgg",
    "slowfast": "3_video_feat/slowfast", "mvit": "3_video_feat/mvit", "r2p1d": "3_video_feat/r2p1d",
    "whisper": "4_audio_feat/whisper", "ast": "4_audio_feat/ast", "vggish": "4_audio_feat/vggish",
}


def published_bytes(movie_id: str, vector: np.ndarray) -> bytes:
    values = [float(x) for x in np.asarray(vector, dtype=np.float32)]
    return json.dumps({movie_id: values}, indent=4).encode()


def write_published(top: Path, model: str, vectors: dict[str, np.ndarray]) -> Path:
    """The model's published folder under `top` (a features_json_format/ look-alike) holding these vectors."""
    folder = top / PUBLISHED[model]
    folder.mkdir(parents=True, exist_ok=True)
    for movie_id, vector in vectors.items():
        (folder / f"{movie_id}.json").write_bytes(published_bytes(movie_id, vector))
    return folder
