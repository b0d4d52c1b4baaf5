"""Every name under an output folder, built here and nowhere else.

Per model (`ModelLayout`), under the output root:
- `<folder>/<id>.json`, one vector per movie; `<folder>/provenance.jsonl`, what produced them;
  `<folder>/.m3l-spec`, a spec model's marker (its spec, dimension and modality);
- `log_<folder>.txt`, one line per event; `.<folder>.lock`, held by the run writing the model;
- `<modality>_embeddings_<name>.parquet` and `.h5`, the consolidated tables, and
  `<modality>_embeddings_<name>.index.npz`, the index of the last consolidation;
- `.<final file name>.<random>.tmp`, a file being written (see `temporary_affixes`).

For the whole root (`FeatureRoot`): the models found there, `report.html`, the records of
the runs, `run_<timestamp>.toml` (each run's resolved config) and `runs.jsonl`, and
extract_all.py's `progress.json`; a file of the root rather than of one model gets its name
there. Readers look models up through `FeatureRoot`, which knows the root, so a spec
model's dimension always comes from the marker in its folder.

Two layouts name the model folders (`layout_kind`): ours above, and the published M3L
features' (`features_json_format/1_text_feat/minilm/`, `.../4_audio_feat/whisper/`), where
each model's folder, log, tables and index go in its modality's `N_<modality>_feat/` and
the twelve's folders carry the model's name. A root named `features_json_format` or
`N_<modality>_feat` is in M3L's layout unless told otherwise.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
from pathlib import Path

from m3l.models import ModelInfo, lookup, resolve, spec
from m3l.store.files import is_regular, open_for_reading
from m3l.store.tables import TABLE_FORMATS

VECTOR_SUFFIX = ".json"
PROVENANCE = "provenance.jsonl"
MARKER = ".m3l-spec"  # in a spec model's output folder: {"spec": ..., "dim": ..., "modality": ...}
TEMP_SUFFIX = ".tmp"
REPORT = "report.html"
PROGRESS = "progress.json"
RUNS_LOG = "runs.jsonl"
_RUN_CONFIG = re.compile(r"run_\d{8}T\d{6}Z(-\d+)?\.toml")


def vector_name(movie_id: str) -> str:
    return f"{movie_id}{VECTOR_SUFFIX}"


def vector_id(name: str) -> str | None:
    """The id whose vector file is called `name`; None for a name no vector file has."""
    return name[:-len(VECTOR_SUFFIX)] if name.endswith(VECTOR_SUFFIX) and not name.startswith(".") else None


def temporary_affixes(final: Path) -> tuple[str, str]:
    """The prefix and suffix (for `tempfile.mkstemp`) of a temporary that becomes `final`: its random middle
    has no dot, so `.a.parquet.x1y2.tmp` can never be taken for a temporary of `a.parquet.x1y2`."""
    return f".{final.name}.", TEMP_SUFFIX


def _temporaries_of(final: Path) -> list[Path]:
    prefix, suffix = temporary_affixes(final)
    own = re.compile(re.escape(prefix) + r"[^.]+" + re.escape(suffix))
    return [path for path in final.parent.glob(f"{glob.escape(prefix)}*{suffix}") if own.fullmatch(path.name)]


def _table_stem(modality: str, name: str) -> str:
    return f"{modality}_embeddings_{name}"


OURS, M3L = "ours", "m3l"
LAYOUTS = (OURS, M3L)
M3L_TOP = "features_json_format"  # the published M3L features' root, one folder per modality below it
M3L_MODALITY_ROOTS = {"text": "1_text_feat", "image": "2_image_feat", "video": "3_video_feat", "audio": "4_audio_feat"}


def layout_kind(output: Path | str, layout: str | None = None) -> str:
    """The layout of an output root: the one asked for, else M3L's for a root named as the published ones."""
    if layout is not None:
        return layout
    return M3L if Path(output).name in (M3L_TOP, *M3L_MODALITY_ROOTS.values()) else OURS


def add_layout_argument(parser: argparse.ArgumentParser) -> None:
    """`--layout`, as every extractor and reader takes it."""
    parser.add_argument("--layout", choices=LAYOUTS,
                        help="folder names under the output root: ours (minilm/, audio_whisper/) or m3l, the "
                             "published M3L features' (1_text_feat/minilm/, 4_audio_feat/whisper/) (default: m3l "
                             f"for a root named {M3L_TOP} or N_<modality>_feat, else ours)")


def _model_root(output: Path, info: ModelInfo, layout: str) -> Path:
    """Where a model's folder, log and tables go: the root itself, or under M3L's layout its
    modality's `N_<modality>_feat/` (the root itself when it is one)."""
    if layout == OURS or output.name in M3L_MODALITY_ROOTS.values():
        return output
    return output / M3L_MODALITY_ROOTS[info.modality]


def _folder_name(info: ModelInfo, layout: str) -> str:
    """A model's folder: ours (`audio_whisper`), or M3L's published name, the model's (`whisper`); a spec
    model's path-safe folder in both."""
    return info.name if layout == M3L and not isinstance(info, spec.SpecInfo) else info.folder


class ModelLayout:
    """The paths of one model's files under an output root, in our layout or the published M3L one
    (`layout_kind`: asked for, else recognised by the root's name)."""

    def __init__(self, output: Path | str | FeatureRoot, info: ModelInfo, layout: str | None = None) -> None:
        if isinstance(output, FeatureRoot):  # a root whose layout is settled
            output, layout = output.output, output.kind
        self.kind = layout_kind(output, layout)
        self.output = _model_root(Path(output), info, self.kind)
        self.info = info
        self.name = _folder_name(info, self.kind)  # names the model's folder, log and lock
        # The published tables of the twelve are named by model, a spec model's by its path-safe folder
        self.table_stem = _table_stem(info.modality, info.folder if isinstance(info, spec.SpecInfo) else info.name)
        self.folder = self.output / self.name
        self.log = self.output / f"log_{self.name}.txt"
        self.lock = self.output / f".{self.name}.lock"
        self.index = self.output / f"{self.table_stem}.index.npz"
        self.marker = self.folder / MARKER
        self.provenance = self.folder / PROVENANCE

    @property
    def tables(self) -> dict[str, Path]:
        """Source → the consolidated table of that format, in the order readers prefer them."""
        return {name: self.output / f"{self.table_stem}{fmt.suffix}" for name, fmt in TABLE_FORMATS.items()}

    def present_tables(self) -> dict[str, Path]:
        """The consolidated tables there, in the order readers prefer them: regular files only, as readers
        open nothing else under an output folder (a link there is not followed, a FIFO not waited on)."""
        return {source: path for source, path in self.tables.items() if is_regular(path)}

    def table_names(self) -> str:
        return f"{self.table_stem}{'/'.join(fmt.suffix for fmt in TABLE_FORMATS.values())}"

    def vector(self, movie_id: str) -> Path:
        return self.folder / vector_name(movie_id)

    def has_vectors(self) -> bool:
        return any(self.folder.glob(f"*{VECTOR_SUFFIX}"))

    def has_features(self) -> bool:
        """A JSON folder or a consolidated table is there."""
        return self.folder.is_dir() or bool(self.present_tables())

    def temporaries(self) -> list[Path]:
        """Temporary files of this model's writes, left only by a run killed mid-write: any in its own
        folder, and beside the root's files only those of a file this model owns."""
        inside = self.folder.glob(f".*{TEMP_SUFFIX}")
        beside = (path for final in [*self.tables.values(), self.index] for path in _temporaries_of(final))
        return sorted([*inside, *beside])


def recorded_marker(folder: Path) -> dict | None:
    """The JSON object of a model folder's marker; None when there is no readable one."""
    fd = open_for_reading(Path(folder) / MARKER)  # a link or FIFO planted there is no marker
    if fd is None:
        return None
    try:
        with os.fdopen(fd, "rb") as handle:
            recorded = json.loads(handle.read(1 << 16))
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def read_marker(folder: Path) -> spec.SpecInfo | None:
    """The SpecInfo recorded in a model folder (see `m3l.models.spec.from_marker`); None for other folders."""
    folder = Path(folder)
    recorded = recorded_marker(folder)
    return None if recorded is None else spec.from_marker(recorded, folder.name, lambda: _table_modality(folder))


def _table_modality(folder: Path) -> str | None:
    """The modality in the name of a folder's consolidated files, `<modality>_embeddings_<folder>.*`."""
    from m3l.modalities import MODALITIES

    return next((modality for modality in MODALITIES
                 if any(folder.parent.glob(f"{_table_stem(modality, glob.escape(folder.name))}.*"))), None)


def marker_bytes(info: spec.SpecInfo) -> bytes:
    return json.dumps(spec.marker(info)).encode()


class FeatureRoot:
    """An output root as readers see it: its models, looked up with the root so that a spec model's
    folder names it and its marker gives its dimension."""

    def __init__(self, output: Path | str, layout: str | None = None) -> None:
        self.output = Path(output)
        self.kind = layout_kind(output, layout)
        self.report = self.output / REPORT
        self.progress = self.output / PROGRESS  # extract_all.py's figures of the run going on
        self.runs_log = self.output / RUNS_LOG

    @classmethod
    def of(cls, output: Path | str | FeatureRoot, layout: str | None = None) -> FeatureRoot:
        """`output` as a root: as it is when its layout is settled already, else in `layout`."""
        return output if isinstance(output, FeatureRoot) else cls(output, layout)

    def __str__(self) -> str:
        return str(self.output)

    def run_config(self, stamp: str, number: int = 1) -> Path:
        """The resolved config of the run started at `stamp`, the `number`-th started in that second."""
        return self.output / f"run_{stamp}{'' if number == 1 else f'-{number}'}.toml"

    def is_run_config(self, path: Path) -> bool:
        """Whether `path` is a run config written into this root (a run started by extract_all.py)."""
        return bool(_RUN_CONFIG.fullmatch(path.name)) and path.absolute().parent == self.output.absolute()

    def model_roots(self) -> list[Path]:
        """The folders that hold model folders: the root, or under M3L's layout each `N_<modality>_feat/`."""
        if self.kind == OURS or self.output.name in M3L_MODALITY_ROOTS.values():
            return [self.output]
        return [self.output / name for name in M3L_MODALITY_ROOTS.values()]

    def recorded(self, folder_name: str) -> spec.SpecInfo | None:
        """The spec model whose marker is in the folder `folder_name`, if any."""
        return next(filter(None, (read_marker(root / folder_name) for root in self.model_roots())), None)

    def resolve(self, names: list[str] | None, modality: str | None = None) -> list[ModelInfo]:
        """`m3l.models.resolve` under this root."""
        return resolve(names, modality, self.recorded)

    def lookup(self, model: str | ModelInfo) -> ModelInfo:
        """`m3l.models.lookup` under this root; a spec model given without its dimension gets the marker's."""
        if isinstance(model, spec.SpecInfo) and not model.dim:
            return self.recorded(model.folder) or model
        return lookup(model, recorded=self.recorded)

    def layout(self, model: str | ModelInfo) -> ModelLayout:
        return ModelLayout(self.output, self.lookup(model), self.kind)

    def found(self) -> list[ModelInfo]:
        """The models with a JSON folder or a consolidated table here, in table order, then the spec
        models' folders by name."""
        from m3l.models import MODELS

        table = [info for info in MODELS.values() if ModelLayout(self.output, info, self.kind).has_features()]
        markers = sorted(marker for root in self.model_roots() for marker in root.glob(f"*/{MARKER}"))
        return table + [info for info in map(read_marker, (marker.parent for marker in markers)) if info is not None]
