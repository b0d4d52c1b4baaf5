"""Models beyond the twelve: `--models FAMILY:ID[@REVISION][?OPTION=VALUE&...]` or `module.path:ClassName`.

A spec becomes a `SpecInfo`, a `ModelInfo` row built on the fly: its output folder is a
file-system-safe form of the spec (`st:BAAI/bge-small-en-v1.5` → `st--BAAI--bge-small-en-v1.5`),
its store path the repository id (with `@REVISION` when pinned), and its dimension is
unknown (0) until the encoder reads it from the loaded model. The folder's marker file
(m3l.store.layout) records the spec, that dimension and the modality, so readers know a
spec folder without being told, and without running any code.

Light like the model table: nothing here imports torch or a model library, except
that `parse("module.path:ClassName")` imports the user's module to read its modality,
which only an extractor asked to run that class does.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from m3l.errors import UserError
from m3l.model_store import StoreEntry
from m3l.models.info import LIBRARIES, ModelInfo

# The tokenizer, config and safetensors weights: what AutoTokenizer/AutoModel and sentence-transformers read.
_TEXT_FILES = ("*.json", "*.txt", "*.model", "*.safetensors")
_CONFIG_AND_WEIGHTS = ("*.json", "*.safetensors")


@dataclass(frozen=True)
class Family:
    modality: str
    encoder: str  # "module:Class" implementing it
    allow_patterns: tuple[str, ...]  # the files of a hub repository its loader reads
    options: dict[str, tuple[str, ...]]  # option → allowed values, the first being the default
    about: str  # what runs and how a vector is pooled, for --help and the docs
    libraries: tuple[str, ...] = ()  # beyond m3l.models.LIBRARIES, those its vectors depend on


FAMILIES: dict[str, Family] = {
    "st": Family("text", "m3l.models.text:STEncoder", _TEXT_FILES, {},
                 "any sentence-transformers model, its own pooling and normalisation"),
    "hf-text": Family("text", "m3l.models.text:HFTextEncoder", _TEXT_FILES, {"pool": ("mean", "cls")},
                      "AutoModel + AutoTokenizer, mean of the last hidden state over real tokens (?pool=cls)"),
    "hf-image": Family("image", "m3l.models.image:HFImageEncoder", _CONFIG_AND_WEIGHTS,
                       {"pool": ("auto", "cls", "mean")},
                       "AutoModel + AutoImageProcessor; CLIP/SigLIP-style: image features; else pooler "
                       "output, or the mean of the patch tokens (?pool=cls|mean)", ("Pillow",)),
    "timm": Family("image", "m3l.models.image:TimmEncoder", ("config.json", "model.safetensors"), {},
                   "a timm model with its pretrained data config, pre-logits features", ("timm", "Pillow")),
    "hf-audio": Family("audio", "m3l.models.audio:HFAudioEncoder", _CONFIG_AND_WEIGHTS, {},
                       "AutoFeatureExtractor + AutoModel, mean over time of the last hidden state "
                       "(CLAP-style: the audio embedding)"),
    "hf-video": Family("video", "m3l.models.video:HFVideoEncoder", _CONFIG_AND_WEIGHTS, {},
                       "AutoModel + its image processor config, windows of num_frames, mean of the clips"),
}
_NAME = r"[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"(?:{_NAME}/)?{_NAME}")
_REVISION = re.compile(r"[\w.-]+(?:/[\w.-]+)*")
_CLASS = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
# The longest name derived from a folder, `.video_embeddings_<folder>.index.npz.XXXXXXXX.tmp`, must fit in
# the 255 bytes most file systems allow in a name
LONGEST_FOLDER = 255 - len(".video_embeddings_.index.npz.XXXXXXXX.tmp")


@dataclass(frozen=True)
class SpecInfo(ModelInfo):
    """A model named by a spec rather than the table; `dim` is 0 until the model is loaded."""

    family: str = ""  # a FAMILIES key, or "class" for module.path:ClassName
    repo_id: str = ""
    revision: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    def option(self, key: str) -> str:
        return dict(self.options).get(key) or FAMILIES[self.family].options[key][0]

    def with_dim(self, dim: int) -> SpecInfo:
        return replace(self, dim=dim)


def families_help(modality: str) -> str:
    """The spec syntax and the modality's families, for --help."""
    names = "; ".join(f"{name}: {family.about}" for name, family in FAMILIES.items() if family.modality == modality)
    return f"or model specs FAMILY:ID[@REVISION][?OPTION=VALUE], FAMILY being {names}; or module.path:ClassName"


def is_spec(text: str) -> bool:
    """Whether `text` is meant as a spec rather than one of the twelve names (which have no colon)."""
    return ":" in text


def parse(text: str) -> SpecInfo:
    """The SpecInfo of a spec; a malformed spec is a UserError naming what is wrong."""
    family_name, _, rest = text.partition(":")
    if family_name not in FAMILIES:
        if is_class(text):
            return _class_info(text)
        raise UserError(f"unknown model family {family_name!r} in {text!r}; use one of "
                        f"{', '.join(f'{name}:' for name in FAMILIES)} or module.path:ClassName")
    family = FAMILIES[family_name]
    rest, _, query = rest.partition("?")
    repo_id, at, revision = rest.partition("@")
    if not _REPO_ID.fullmatch(repo_id) or "--" in repo_id or ".." in repo_id:
        raise UserError(f"malformed model id {repo_id!r} in {text!r}; expected ORGANISATION/NAME as on the hub")
    if at and not (_REVISION.fullmatch(revision) and ".." not in revision):
        raise UserError(f"malformed revision {revision!r} in {text!r}; expected a branch, tag or commit hash")
    options = _options(text, family_name, query)
    canonical = f"{family_name}:{repo_id}" + (f"@{revision}" if at else "") + (
        "?" + "&".join(f"{k}={v}" for k, v in options) if options else "")
    folder = _short_enough(text, "--".join([family_name, *repo_id.split("/")]) + (
        f"@{revision.replace('/', '--')}" if at else "") + "".join(f"+{k}={v}" for k, v in options))
    store_path = repo_id + (f"@{revision}" if at else "")
    entry = StoreEntry(store_path, repo_id=repo_id, revision=revision if at else "main",
                       allow_patterns=family.allow_patterns)
    return SpecInfo(canonical, folder, family.modality, 0, (entry,), family.encoder,
                    decimals=6 if family.modality == "audio" else None,
                    auto_precision="fp16" if family.modality == "audio" else "fp32",
                    libraries=(*LIBRARIES, *family.libraries), family=family_name, repo_id=repo_id,
                    revision=revision if at else None, options=options)


def _short_enough(text: str, folder: str) -> str:
    if len(folder.encode()) > LONGEST_FOLDER:
        raise UserError(f"model spec {text[:60]!r}... is too long: its output folder name would be "
                        f"{len(folder.encode())} bytes, at most {LONGEST_FOLDER} fit in a file name")
    return folder


def _options(text: str, family_name: str, query: str) -> tuple[tuple[str, str], ...]:
    """`key=value&...` checked against the family's options; defaults are left out, so that a
    spec spelled with or without them names the same folder."""
    allowed = FAMILIES[family_name].options
    options = {}
    for pair in filter(None, query.split("&")):
        key, equals, value = pair.partition("=")
        if key not in allowed:
            known = f"its options are {', '.join(allowed)}" if allowed else "it takes no options"
            raise UserError(f"unknown option {key!r} in {text!r}; {family_name}: {known}")
        if not equals or value not in allowed[key]:
            raise UserError(f"option {key} in {text!r} must be one of {', '.join(allowed[key])}")
        options[key] = value
    return tuple(sorted((k, v) for k, v in options.items() if v != allowed[k][0]))


def is_class(text: str) -> bool:
    """Whether `text` names the user's own encoder class (`module.path:ClassName`)."""
    return text.partition(":")[0] not in FAMILIES and bool(_CLASS.fullmatch(text))


def class_folder(text: str) -> str:
    """The output folder of `module.path:ClassName`, known without importing it."""
    return _short_enough(text, text.replace(":", "--"))


def folder_of(text: str) -> str:
    """The output folder a spec names; a `module.path:ClassName` spec is not imported."""
    return class_folder(text) if is_class(text) else parse(text).folder


def _class_info(text: str) -> SpecInfo:
    """`module.path:ClassName`: an Encoder subclass declaring `modality`, and optionally `files`
    (StoreEntry rows it needs in the store) and `dim` (else its `load` sets `self.info.with_dim`)."""
    from m3l.modalities import MODALITIES

    folder = class_folder(text)
    module_name, _, class_name = text.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as error:
        raise UserError(f"cannot import {module_name} for {text!r}: {error}") from None
    except AttributeError:
        raise UserError(f"{module_name} has no class {class_name!r}") from None
    from m3l.models.base import Encoder

    if not (isinstance(cls, type) and issubclass(cls, Encoder)):
        raise UserError(f"{text} is not a subclass of m3l.models.base.Encoder")
    modality = getattr(cls, "modality", None)
    if modality not in MODALITIES:
        raise UserError(f"{text} must declare `modality`, one of {', '.join(MODALITIES)}")
    base_module, _, base_name = MODALITIES[modality].encoder_base.partition(":")
    if not issubclass(cls, getattr(importlib.import_module(base_module), base_name)):
        raise UserError(f"{text} is a {modality} encoder: it must subclass {base_module}.{base_name}, "
                        "which declares what the loader asks of it")
    return SpecInfo(text, folder, modality, int(getattr(cls, "dim", 0)), tuple(getattr(cls, "files", ())), text,
                    libraries=(*LIBRARIES, *getattr(cls, "libraries", ())), family="class")


def marker(info: SpecInfo) -> dict:
    """What a spec model's folder records: its spec, dimension (0 until known) and modality."""
    return {"spec": info.name, "dim": info.dim, "modality": info.modality}


def from_marker(recorded: object, folder_name: str, table_modality: Callable[[], str | None]) -> SpecInfo | None:
    """The SpecInfo a folder's marker records (dim included once known); None when it records none
    for a folder of that name.

    Reading a folder never runs code: a `module.path:ClassName` spec is not imported, its
    modality is the marker's (a marker written before the modality was recorded:
    `table_modality()`, the modality in the name of the folder's consolidated tables)."""
    try:
        spec, dim = recorded["spec"], int(recorded.get("dim") or 0)
        info = _recorded_class(spec, recorded.get("modality") or table_modality()) if is_class(spec) else parse(spec)
    except (TypeError, KeyError, ValueError, AttributeError, UserError):
        return None
    return info.with_dim(dim) if info.folder == folder_name and dim >= 0 else None


def _recorded_class(text: str, modality: object) -> SpecInfo:
    """A `module.path:ClassName` model as its folder records it, without importing the module."""
    from m3l.modalities import MODALITIES

    if modality not in MODALITIES:
        raise UserError(f"no modality recorded for {text}")
    return SpecInfo(text, class_folder(text), modality, 0, (), text, family="class")
