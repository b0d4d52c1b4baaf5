"""A one-page HTML report of an output folder: is every model's feature set complete and sane?

Per model: coverage against the catalogue (or, without one, against the ids the runs
saw), dimension, vector norms, why ids are missing (from the model's log), and a 2-D
PCA scatter, so that a broken model (all vectors equal, NaNs, one collapsed cluster)
shows at a glance. The page is self-contained: styles inline, plots as embedded PNGs.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from m3l.errors import UserError
from m3l.modalities import read_catalogues
from m3l.models import ModelInfo
from m3l.readers.features import (CatalogueIds, ModelSummary, choose_source, expected_ids, load_features,
                                  missing_reasons, read_log, summarize)
from m3l.store.layout import FeatureRoot
from m3l.store.writer import OutputError, atomic_write_bytes

MAX_POINTS = 5000  # plotted (and PCA-fitted) per model; larger sets are sampled
COLLAPSED_SPREAD = 1e-2  # RMS distance to the centroid, relative to the RMS norm
SHOWN_IDS = 12  # example ids per missing reason


@dataclass
class VectorStats:
    norms: np.ndarray  # L2 norms of the finite vectors
    non_finite: int  # vectors holding NaN or Inf
    zero: int
    identical: bool  # every finite vector equals the first
    spread: float  # RMS distance to the centroid / RMS norm, of the finite vectors
    zero_ok: bool = False  # the model's recipe yields zero vectors: they are no problem

    @classmethod
    def of(cls, matrix: np.ndarray, zero_ok: bool = False) -> VectorStats:
        finite = matrix[np.isfinite(matrix).all(axis=1)]
        if not len(finite):
            return cls(np.zeros(0), len(matrix), 0, False, 0.0, zero_ok)
        norms = np.linalg.norm(finite, axis=1).astype(np.float64)
        distances = np.linalg.norm(finite - finite.mean(axis=0, dtype=np.float64).astype(finite.dtype), axis=1)
        rms_norm = np.sqrt(np.mean(norms**2))
        spread = float(np.sqrt(np.mean(distances.astype(np.float64) ** 2)) / rms_norm) if rms_norm else 0.0
        return cls(norms, len(matrix) - len(finite), int(np.sum(norms == 0)), bool((finite == finite[0]).all()),
                   spread, zero_ok)

    def problems(self) -> list[str]:
        found = []
        total = len(self.norms) + self.non_finite
        if self.non_finite:
            found.append(f"NaN or Inf in {self.non_finite} of {total} vectors")
        if self.zero and not self.zero_ok:
            found.append(f"all zeros: {self.zero} of {total} vectors")
        if self.identical and len(self.norms) > 1:
            found.append(f"all {len(self.norms)} vectors are identical")
        elif len(self.norms) > 1 and self.spread < COLLAPSED_SPREAD:
            found.append(f"collapsed: vectors differ by {self.spread:.1e} of their norm")
        return found


def pca_2d(matrix: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the rows on their first two principal axes, and the share of variance of each.

    A randomized SVD (a few power iterations) keeps this fast for 4096-d features.
    """
    centred = matrix.astype(np.float64) - matrix.mean(axis=0)
    total = float(np.sum(centred**2))
    coords, shares = np.zeros((len(matrix), 2)), np.zeros(2)
    if total == 0.0:
        return coords, shares
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(centred @ rng.standard_normal((matrix.shape[1], 12)))[0]
    for _ in range(4):
        basis = np.linalg.qr(centred @ (centred.T @ basis))[0]
    _, singular, axes = np.linalg.svd(basis.T @ centred, full_matrices=False)
    kept = min(2, len(singular))
    coords[:, :kept] = centred @ axes[:kept].T
    shares[:kept] = singular[:kept] ** 2 / total
    return coords, shares


def scatter_png(info: ModelInfo, matrix: np.ndarray, problems: list[str]) -> str:
    """The PCA scatter of a model's finite vectors as a base64 PNG, its problems written on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = matrix[np.isfinite(matrix).all(axis=1)]
    if len(finite) > MAX_POINTS:
        finite = finite[np.random.default_rng(0).choice(len(finite), MAX_POINTS, replace=False)]
    figure, axes = plt.subplots(figsize=(4.6, 3.6), dpi=100)
    if len(finite):
        coords, shares = pca_2d(finite)
        axes.scatter(coords[:, 0], coords[:, 1], s=14 if len(finite) < 500 else 4, alpha=0.7,
                     color="#c0392b" if problems else "#2c6fbb", linewidths=0)
        axes.set_xlabel(f"PC1 ({100 * shares[0]:.0f}% of variance)")
        axes.set_ylabel(f"PC2 ({100 * shares[1]:.0f}%)")
    shown = f"{len(finite)} of {len(matrix)}" if len(finite) < len(matrix) else f"{len(matrix)}"
    axes.set_title(f"{info.name}: {shown} vectors" if len(finite) else f"{info.name}: no finite vectors", fontsize=10)
    axes.grid(alpha=0.3)
    if problems:
        axes.text(0.02, 0.98, "\n".join(problems), transform=axes.transAxes, va="top", fontsize=8,
                  color="#b3261e", bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#b3261e"})
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class ModelReport:
    info: ModelInfo
    summary: ModelSummary
    stats: VectorStats
    missing: dict[str, list[str]]  # reason → ids
    png: str

    @classmethod
    def of(cls, output: FeatureRoot, info: ModelInfo, catalogue: CatalogueIds | None) -> ModelReport:
        source = choose_source(output, info)
        ids, matrix = load_features(output, info, source)
        have = set(ids)
        missing = [i for i in expected_ids(output, info, ids, catalogue) if i not in have]
        stats = VectorStats.of(matrix, info.zero_vectors_ok)
        return cls(info, summarize(output, info, ids, catalogue, source), stats,
                   missing_reasons(read_log(output, info), missing), scatter_png(info, matrix, stats.problems()))


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px 32px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 0 0 8px; }
.meta { color: #666; margin-bottom: 18px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f3f5f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1e7b34; font-weight: 600; } .bad { color: #b3261e; font-weight: 600; }
.models { display: flex; flex-wrap: wrap; gap: 16px; }
section { border: 1px solid #dde2e8; border-radius: 6px; padding: 12px 14px; width: 480px; }
section img { display: block; width: 460px; } .ids { color: #555; font-family: monospace; font-size: 12px; }
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _norms(stats: VectorStats) -> str:
    if not len(stats.norms):
        return "<td class=num colspan=3>–</td>"
    values = (stats.norms.min(), np.median(stats.norms), stats.norms.max())
    return "".join(f"<td class=num>{value:.4g}</td>" for value in values)


def _health(report: ModelReport) -> str:
    problems = report.stats.problems() + (["no vectors"] if not report.summary.count else [])
    if not problems:
        return "<span class=ok>ok</span>"
    return "<br>".join(f"<span class=bad>{_e(problem)}</span>" for problem in problems)


def _summary_row(report: ModelReport) -> str:
    s = report.summary
    covered = s.expected - sum(map(len, report.missing.values()))
    return (f"<tr><td><a href='#{_e(s.folder)}'>{_e(s.name)}</a></td><td>{_e(s.modality)}</td>"
            f"<td class=num>{s.dim}</td><td class=num>{s.count}</td>"
            f"<td class=num>{covered}/{s.expected} ({100 * s.coverage:.1f}%)</td>{_norms(report.stats)}"
            f"<td>{_e(s.source)}</td><td>{_health(report)}</td></tr>")


def _missing_table(missing: dict[str, list[str]]) -> str:
    if not missing:
        return "<p class=ok>no missing ids</p>"
    rows = "".join(
        f"<tr><td>{_e(reason)}</td><td class=num>{len(ids)}</td>"
        f"<td class=ids>{_e(' '.join(ids[:SHOWN_IDS]))}{' …' if len(ids) > SHOWN_IDS else ''}</td></tr>"
        for reason, ids in missing.items())
    return f"<table><tr><th>why missing (log)</th><th>ids</th><th>examples</th></tr>{rows}</table>"


def _model_section(report: ModelReport) -> str:
    s = report.summary
    return (f"<section id='{_e(s.folder)}'><h2>{_e(s.name)} <small>({_e(s.modality)}, {s.dim}-d, "
            f"folder {_e(s.folder)}/)</small></h2>{_health(report)}"
            f"<img alt='PCA scatter of {_e(s.name)}' src='data:image/png;base64,{report.png}'>"
            f"{_missing_table(report.missing)}</section>")


def render(output: Path, reports: list[ModelReport], catalogue_inputs: dict[str, Path]) -> str:
    against = ("catalogues " + ", ".join(f"{m}: {p}" for m, p in catalogue_inputs.items()) if catalogue_inputs
               else "the ids each model's runs saw (its vectors and its log)")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = ("<tr><th>model</th><th>modality</th><th>dim</th><th>vectors</th><th>coverage</th>"
              "<th>norm min</th><th>median</th><th>max</th><th>read from</th><th>health</th></tr>")
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Features in {_e(output)}</title>"
            f"<style>{STYLE}</style></head><body><h1>Features in {_e(output)}</h1>"
            f"<p class=meta>{len(reports)} models · coverage against {_e(against)} · {stamp}</p>"
            f"<table>{header}{''.join(map(_summary_row, reports))}</table>"
            f"<div class=models>{''.join(map(_model_section, reports))}</div></body></html>\n")


def write_report(output: Path, html_path: Path | None = None,
                 catalogue_inputs: dict[str, Path] | None = None, layout: str | None = None) -> Path:
    """Write the report of every model under `output`, in `layout` (see m3l.store.layout), by default
    to `<output>/report.html`."""
    if not Path(output).is_dir():
        raise UserError(f"output folder not found: {output}")
    root = FeatureRoot(output, layout)
    infos = root.found()
    if not infos:
        raise UserError(f"no features under {output}")
    catalogue_inputs = catalogue_inputs or {}
    catalogue = ({modality: catalogue.listed_ids() for modality, catalogue in read_catalogues(catalogue_inputs).items()}
                 if catalogue_inputs else None)
    reports = [ModelReport.of(root, info, catalogue) for info in infos]
    html_path = Path(html_path or root.report)
    try:
        html_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(html_path.parent, error) from None
    atomic_write_bytes(html_path, render(Path(output), reports, catalogue_inputs).encode("utf-8"))
    return html_path
