"""What describes a model: `ModelInfo`, one row of the model table (m3l.models) or a spec (m3l.models.spec).

Below the table, so that the encoder contract (m3l.models.base) and the specs import it without
importing the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from m3l.model_store import StoreEntry

# Libraries whose versions can change any model's vectors (torchvision and PyAV decode and resize the media);
# a row adds those only its recipe uses. Provenance records the installed version of each one a row names.
LIBRARIES = ("torch", "transformers", "sentence-transformers", "torchvision", "av")

@dataclass(frozen=True)
class ModelInfo:
    name: str  # what --models takes
    folder: str  # output folder of the per-movie JSON files
    modality: str
    dim: int
    files: tuple[StoreEntry, ...]
    encoder: str  # "module:Class" implementing m3l.models.base.Encoder
    decimals: int | None = None  # rounding of the JSON values (audio: 6)
    zero_vectors_ok: bool = False  # the recipe yields all-zero vectors for some inputs (docs/recipes.md)
    auto_precision: str = "fp32"  # what --precision auto runs on CUDA: the published recipe's ("fp32", "fp16")
    max_seq_length: int | None = None  # tokens, set at load whatever the tokenizer config says
    recipe: int = 1  # version of this model's preprocessing and pooling: bump when they change the vectors
    libraries: tuple[str, ...] = LIBRARIES  # the distributions its vectors depend on (provenance records them)
