"""Comparing two sets of features, model by model: do my vectors equal the published ones?

Per model shared by both sides, over the ids both have: the largest absolute difference,
the largest relative one (per id, the largest absolute difference over the largest
magnitude of the reference vector, side B), the lowest cosine similarity, and the ids
whose relative difference exceeds the model's tolerance. Tolerances depend on the model and
on the arithmetic each side was computed in (its provenance record; for a folder without
one, the recipe's published precision): float noise for fp32, more for tf32 and fp16, and
whole quantisation steps for VGGish. Vectors are read as `load_features` reads them (one
scan of each folder or one table, one float32 matrix), and the differences are computed on
the whole matrices at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from m3l.errors import UserError
from m3l.models import ModelInfo, resolve, spec
from m3l.readers.features import load_features, provenance
from m3l.store.layout import OURS, VECTOR_SUFFIX, FeatureRoot, ModelLayout, read_marker

# Relative difference allowed per arithmetic: fp32 runs differ by float noise (about 1e-6, more on
# another device's kernels); tf32 and float16 autocast by about 1e-3 of a vector's scale.
TOLERANCES = {"fp32": 1e-4, "tf32": 5e-3, "fp16": 5e-3}
LOOSEST = ("fp16", "tf32", "fp32")
# Models whose recipe rounds to coarse steps: VGGish quantises to 256 levels, so a borderline
# value moves one whole step (1/255 of the range) at any precision.
QUANTISED = {"vggish": 1e-2}
WORST_SHOWN = 5
COLUMNS = ("model", "dim", "shared", "only A", "only B", "max abs", "max rel", "min cosine", "tolerance", "over",
           "worst ids")


@dataclass(frozen=True)
class Side:
    """One model's features on one side: where they are read from, and how."""

    root: FeatureRoot
    info: ModelInfo

    def precision(self) -> str:
        """The arithmetic its vectors were computed in: recorded, else the published recipe's."""
        recorded = provenance(self.root, self.info)
        return (recorded or {}).get("provenance", {}).get("precision") or self.info.auto_precision


def default_tolerance(name: str, precisions: tuple[str, str]) -> tuple[float, str]:
    """The tolerance of a model compared across two arithmetics, and why (for the table)."""
    if name in QUANTISED:
        return QUANTISED[name], "quantised"
    loosest = next((p for p in LOOSEST if p in precisions), "fp32")
    return TOLERANCES.get(loosest, TOLERANCES["fp16"]), loosest


@dataclass
class ModelComparison:
    name: str
    dim: int
    tolerance: float
    basis: str  # where the tolerance comes from: the loosest precision, "quantised" or "given"
    shared: int = 0
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    max_abs: float = 0.0
    max_rel: float = 0.0
    min_cosine: float = 1.0
    over: list[str] = field(default_factory=list)  # ids beyond tolerance, worst first

    @property
    def ok(self) -> bool:
        return not self.over

    def as_dict(self) -> dict:
        return {"model": self.name, "dim": self.dim, "tolerance": self.tolerance, "tolerance_basis": self.basis,
                "shared": self.shared, "only_a": len(self.only_a), "only_b": len(self.only_b),
                "only_a_ids": self.only_a[:WORST_SHOWN], "only_b_ids": self.only_b[:WORST_SHOWN],
                "max_abs": self.max_abs, "max_rel": self.max_rel, "min_cosine": self.min_cosine,
                "over_tolerance": len(self.over), "worst_ids": self.over[:WORST_SHOWN], "ok": self.ok}


def differences(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the largest absolute difference, that over the largest magnitude of b's row
    (the absolute one where b's row is all zeros), and the cosine similarity (1 for two zero rows)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    largest = np.abs(a64 - b64).max(axis=1, initial=0.0)
    scale = np.abs(b64).max(axis=1, initial=0.0)
    relative = np.divide(largest, scale, out=largest.copy(), where=scale > 0)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    dots = np.einsum("ij,ij->i", a64, b64)
    cosine = np.divide(dots, norms, out=np.where(largest == 0, 1.0, 0.0), where=norms > 0)
    return largest, relative, cosine


def compare_model(a: Side, b: Side, tolerance: float | None = None) -> ModelComparison:
    ids_a, matrix_a = load_features(a.root, a.info)
    ids_b, matrix_b = load_features(b.root, b.info)
    if matrix_a.shape[1] != matrix_b.shape[1]:
        raise UserError(f"{a.info.name}: vectors of {matrix_a.shape[1]} values in {ModelLayout(a.root, a.info).folder} "
                        f"but {matrix_b.shape[1]} in {ModelLayout(b.root, b.info).folder}: not the same model")
    limit, basis = ((tolerance, "given") if tolerance is not None
                    else default_tolerance(a.info.name, (a.precision(), b.precision())))
    result = ModelComparison(a.info.name, a.info.dim, limit, basis)
    row_b = {movie_id: k for k, movie_id in enumerate(ids_b)}
    rows = np.array([row_b.get(movie_id, -1) for movie_id in ids_a], dtype=np.int64)
    in_b = rows >= 0
    result.only_a = [ids_a[k] for k in np.flatnonzero(~in_b)]
    in_a = set(ids_a)
    result.only_b = [movie_id for movie_id in ids_b if movie_id not in in_a]
    shared = np.flatnonzero(in_b)
    result.shared = len(shared)
    if not len(shared):
        return result
    largest, relative, cosine = differences(matrix_a[shared], matrix_b[rows[shared]])
    result.max_abs, result.max_rel, result.min_cosine = float(largest.max()), float(relative.max()), float(cosine.min())
    over = np.flatnonzero(relative > limit)
    result.over = [ids_a[shared[k]] for k in over[np.argsort(-relative[over], kind="stable")]]
    return result


def _model_folder(path: Path) -> Side | None:
    """The model a folder of `<id>.json` files holds, named by its folder (ours, or the published
    name) or its spec marker; None when the folder holds no vector files."""
    recorded = read_marker(path)
    if recorded is None and not any(path.glob(f"*{VECTOR_SUFFIX}")):
        return None
    info = recorded or FeatureRoot(path.parent).resolve([path.name])[0]
    return Side(FeatureRoot(path.parent, OURS), replace(info, folder=path.name))  # this very folder, however named


def sides(path: Path, layout: str | None = None) -> dict[str, Side]:
    """Model name → its features under `path`: a feature root (in `layout`, see m3l.store.layout), or
    one model's folder."""
    if not path.is_dir():
        raise UserError(f"not a folder: {path}")
    one = _model_folder(path)
    if one is not None:
        return {one.info.name: one}
    root = FeatureRoot(path, layout)
    found = {info.name: Side(root, info) for info in root.found()}
    if not found:
        raise UserError(f"no features under {path}: neither a model folder of <id>.json files nor a feature root")
    return found


def pairs(a: Path, b: Path, models: list[str] | None = None,
          layout: str | None = None) -> list[tuple[Side, Side]]:
    """The models to compare: those found on both sides (two model folders are one pair), or the chosen ones."""
    found_a, found_b = sides(a, layout), sides(b, layout)
    if len(found_a) == 1 and len(found_b) == 1 and models is None:
        return [(next(iter(found_a.values())), next(iter(found_b.values())))]
    names = list(map(model_name, models)) if models else [name for name in found_a if name in found_b]
    missing = [f"{name} (not under {path})" for name in names for path, found in ((a, found_a), (b, found_b))
               if name not in found]
    if missing:
        raise UserError(f"nothing to compare for {', '.join(missing)}")
    if not names:
        raise UserError(f"no model in both {a} ({', '.join(found_a)}) and {b} ({', '.join(found_b)})")
    return [(found_a[name], found_b[name]) for name in names]


def parse_tolerances(texts: list[str]) -> dict[str, float]:
    """`model=x` pairs (x a non-negative number) by model name."""
    tolerances = {}
    for text in texts:
        name, equals, value = text.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not equals or not name or not number >= 0:
            raise UserError(f"--tolerance {text!r}: expected MODEL=X with X a non-negative number, e.g. whisper=1e-2")
        tolerances[model_name(name)] = number
    return tolerances


def model_name(name: str) -> str:
    """The name FeatureRoot.found gives the model `name` names; a `module.path:ClassName` is never imported."""
    return name if spec.is_class(name) else resolve([name])[0].name


def compare(a: Path, b: Path, models: list[str] | None = None, tolerances: dict[str, float] | None = None,
            layout: str | None = None) -> list[ModelComparison]:
    tolerances = tolerances or {}
    return [compare_model(side_a, side_b, tolerances.get(side_a.info.name))
            for side_a, side_b in pairs(a, b, models, layout)]


def _row(result: ModelComparison) -> tuple[str, ...]:
    worst = ", ".join(result.over[:WORST_SHOWN]) + (f" (+{len(result.over) - WORST_SHOWN})"
                                                    if len(result.over) > WORST_SHOWN else "")
    measured = (f"{result.max_abs:.2e}", f"{result.max_rel:.2e}", f"{result.min_cosine:.6f}") if result.shared \
        else ("-", "-", "-")
    return (result.name, str(result.dim), str(result.shared), str(len(result.only_a)), str(len(result.only_b)),
            *measured, f"{result.tolerance:g} ({result.basis})", str(len(result.over)), worst or "-")


def table(results: list[ModelComparison]) -> list[str]:
    rows = [COLUMNS, *map(_row, results)]
    widths = [max(len(row[k]) for row in rows) for k in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    for result in results:
        for side, ids in (("A", result.only_a), ("B", result.only_b)):
            if ids:
                more = f" (+{len(ids) - WORST_SHOWN} more)" if len(ids) > WORST_SHOWN else ""
                lines.append(f"{result.name}: only in {side}: {', '.join(ids[:WORST_SHOWN])}{more}")
    return lines


def verdict(results: list[ModelComparison]) -> tuple[bool, str]:
    over = [f"{r.name} ({len(r.over)} id{'s' if len(r.over) > 1 else ''})" for r in results if r.over]
    empty = [r.name for r in results if not r.shared]
    if over or empty:
        reasons = ([f"beyond tolerance: {', '.join(over)}"] if over else []) + (
            [f"no id in both, nothing compared: {', '.join(empty)}"] if empty else [])
        return False, f"compare: {'; '.join(reasons)}"
    plural = "s" if len(results) > 1 else ""
    return True, f"compare: OK ({len(results)} model{plural}, every shared id within tolerance)"
