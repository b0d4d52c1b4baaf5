"""The twelve models: what each one is called, where it lives, and which class runs it.

This table is light on purpose (no torch, no model library imported): the CLI,
consolidation and the audit read it in any venv. The implementation named by
`encoder` is imported only when a run needs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from m3l.errors import UserError
from m3l.model_store import StoreEntry
from m3l.models.info import LIBRARIES, ModelInfo

_PILLOW = (*LIBRARIES, "Pillow")  # posters are decoded and resized by Pillow
_PYTORCHVIDEO = (*LIBRARIES, "pytorchvideo")


def _hf(repo_id: str, *allow_patterns: str, revision: str = "main") -> tuple[StoreEntry, ...]:
    """A hub repository: only the files the loader reads (no TF/Flax/ONNX/OpenVINO copies), at `revision`."""
    return (StoreEntry(repo_id, repo_id=repo_id, revision=revision, allow_patterns=allow_patterns),)


def _url(path: str, url: str) -> StoreEntry:
    return StoreEntry(path, url=url)


# What sentence-transformers reads from a published folder: module list, module configs, tokenizer, weights.
_ST_FILES = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json", "config.json",
             "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
             "model.safetensors", "1_Pooling/config.json")
# What transformers' from_pretrained reads for a model plus its feature extractor.
_HF_FILES = ("config.json", "preprocessor_config.json", "model.safetensors")
# Both weight formats where the published folder's format could not be pinned down; the loader prefers safetensors.
_CLIP = _hf("sentence-transformers/clip-ViT-B-32", "modules.json", "0_CLIPModel/*.json", "0_CLIPModel/merges.txt",
            "0_CLIPModel/model.safetensors", "0_CLIPModel/pytorch_model.bin")
_TEXT = "m3l.models.text:SentenceTransformerEncoder"
_VGGISH = "https://github.com/harritaylor/torchvggish/releases/download/v0.1"
_PYTORCHVIDEO_ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"
_IG65M = "https://github.com/moabitcoin/ig65m-pytorch/releases/download/v1.0.0"

MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo("minilm", "minilm", "text", 384, _hf("sentence-transformers/all-MiniLM-L6-v2", *_ST_FILES), _TEXT),
        ModelInfo("mpnet", "mpnet", "text", 768, _hf("sentence-transformers/all-mpnet-base-v2", *_ST_FILES), _TEXT),
        ModelInfo("clip-text", "clip-text", "text", 512, _CLIP, _TEXT, max_seq_length=77),
        ModelInfo("clip-image", "clip-image", "image", 512, _CLIP, "m3l.models.image:ClipImageEncoder",
                  libraries=_PILLOW),
        ModelInfo("vgg", "vgg", "image", 4096,
                  (_url("torchvision/vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),),
                  "m3l.models.image:VGGEncoder", libraries=_PILLOW),
        ModelInfo("vit", "vit", "image", 768, _hf("google/vit-base-patch16-224-in21k", *_HF_FILES, "pytorch_model.bin"),
                  "m3l.models.image:ViTEncoder", libraries=_PILLOW),
        ModelInfo("whisper", "audio_whisper", "audio", 512, _hf("openai/whisper-base", *_HF_FILES),
                  "m3l.models.audio:WhisperEncoder", decimals=6, auto_precision="fp16"),
        ModelInfo("ast", "audio_ast", "audio", 768, _hf("MIT/ast-finetuned-audioset-10-10-0.4593", *_HF_FILES),
                  "m3l.models.audio:ASTEncoder", decimals=6, auto_precision="fp16"),
        ModelInfo("vggish", "audio_vggish", "audio", 128,
                  (_url("torchvggish/vggish-10086976.pth", f"{_VGGISH}/vggish-10086976.pth"),
                   _url("torchvggish/vggish_pca_params-970ea276.pth", f"{_VGGISH}/vggish_pca_params-970ea276.pth")),
                  "m3l.models.vggish:VGGishEncoder", decimals=6, zero_vectors_ok=True),
        ModelInfo("slowfast", "slowfast", "video", 2304,
                  (_url("pytorchvideo/SLOWFAST_8x8_R50.pyth", f"{_PYTORCHVIDEO_ZOO}/SLOWFAST_8x8_R50.pyth"),),
                  "m3l.models.video:SlowFastEncoder", libraries=_PYTORCHVIDEO),
        ModelInfo("mvit", "mvit", "video", 768,
                  (_url("pytorchvideo/MVIT_B_32x3_f294077834.pyth", f"{_PYTORCHVIDEO_ZOO}/MVIT_B_32x3_f294077834.pyth"),),
                  "m3l.models.video:MViTEncoder", libraries=_PYTORCHVIDEO),
        ModelInfo("r2p1d", "r2p1d", "video", 512,
                  (_url("ig65m/r2plus1d_34_clip32_ft_kinetics_from_ig65m-ade133f1.pth",
                        f"{_IG65M}/r2plus1d_34_clip32_ft_kinetics_from_ig65m-ade133f1.pth"),),
                  "m3l.models.video:R2Plus1DEncoder"),
    )
}


def models_of(modality: str) -> list[ModelInfo]:
    return [info for info in MODELS.values() if info.modality == modality]


Recorded = Callable[[str], ModelInfo | None]  # an output folder's name → the spec model its marker records


def resolve(names: list[str] | None, modality: str | None = None, recorded: Recorded | None = None) -> list[ModelInfo]:
    """The models named, each by name, output folder or model spec (docs/models.md), once each; every
    model of the table (of `modality`) when none are. With `recorded` (an output root's markers, see
    m3l.store.layout.FeatureRoot), a spec model's folder also names it, and its marker gives its dimension.

    A name that is no model (of `modality`) is a UserError listing the choices, and so are two
    models writing to one folder.
    """
    available = models_of(modality) if modality else list(MODELS.values())
    if not names:
        return available
    by_key = {key: info for info in available for key in (info.name, info.folder)}
    chosen = [by_key.get(name) or _spec_model(name, recorded) for name in names]
    unknown = [name for name, info in zip(names, chosen) if info is None]
    if unknown:
        raise UserError(f"unknown {f'{modality} ' if modality else ''}model {', '.join(map(repr, unknown))}; "
                        f"choose from {', '.join(info.name for info in available)} or a model spec (docs/models.md)")
    elsewhere = [info for info in chosen if modality and info.modality != modality]
    if elsewhere:
        raise UserError(f"{elsewhere[0].name} is for the {elsewhere[0].modality} modality, not {modality}")
    return _one_per_folder(list(dict.fromkeys(chosen)))


def _one_per_folder(chosen: list[ModelInfo]) -> list[ModelInfo]:
    """Two specs spelled apart may name one folder (`st:a/b@x/y`, `st:a/b@x--y`): a run of both would
    wait on its own lock, so they are refused before any work."""
    by_folder: dict[str, ModelInfo] = {}
    for info in chosen:
        first = by_folder.setdefault(info.folder, info)
        if first is not info:
            raise UserError(f"{first.name} and {info.name} write to the same output folder {info.folder}; "
                            "name one of them")
    return chosen


def _spec_model(name: str, recorded: Recorded | None) -> ModelInfo | None:
    """A model spec, or the output folder of one; None when `name` is neither.

    With `recorded` (a reader's output root), a `module.path:ClassName` model is what its folder's
    marker records: reading features never imports the user's code."""
    from m3l.models import spec  # imports this module

    if recorded is None:
        return spec.parse(name) if spec.is_spec(name) else None
    folder = spec.folder_of(name) if spec.is_spec(name) else name
    found = recorded(folder)
    if found or not spec.is_spec(name):
        return found
    if spec.is_class(name):
        raise UserError(f"no features of {name} in the output folder: no {folder}/ holding its spec marker")
    return spec.parse(name)


def lookup(model: str | ModelInfo, modality: str | None = None, recorded: Recorded | None = None) -> ModelInfo:
    """The model called `model` (`whisper`, `st:BAAI/bge-small-en-v1.5`) or writing to the output folder
    `model` (`audio_whisper`; a spec model's folder, given `recorded`)."""
    return model if isinstance(model, ModelInfo) else resolve([model], modality, recorded)[0]


def encoder_class(info: ModelInfo) -> type:
    module, _, cls = info.encoder.partition(":")
    return getattr(importlib.import_module(module), cls)
