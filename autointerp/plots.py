"""PNG figures for the comparison report and the catalog: score distributions and unit densities.

Figures are built on `matplotlib.figure.Figure` directly (Agg canvas), never through pyplot, so they
need no display, leave no global state behind and are safe to make from any thread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

KIND_COLORS = {"neuron": "#1f77b4", "feature": "#d62728"}
KIND_LABELS = {"neuron": "neurons", "feature": "features"}


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def plot_score_distributions(samples: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path) -> Path:
    """One panel per scorer: neuron and feature score histograms overlaid, medians marked.

    `samples` is {scorer: {"neuron": scores, "feature": scores}}. Histograms are normalised to
    fractions of units, so kinds of very different sizes stay comparable.
    """
    scorers = list(samples) or ["(none)"]
    fig = Figure(figsize=(4.6 * len(scorers), 3.4), layout="constrained")
    axes = fig.subplots(1, len(scorers), squeeze=False)[0]
    for ax, scorer in zip(axes, scorers):
        by_kind = samples.get(scorer, {})
        every = [v for values in by_kind.values() for v in values]
        if not every:
            ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(scorer)
            continue
        bins = _bins(min(every), max(every), 20)
        for kind in ("neuron", "feature"):
            values = np.asarray(by_kind.get(kind, []), float)
            if len(values) == 0:
                continue
            weights = np.full(len(values), 1.0 / len(values))
            color = KIND_COLORS[kind]
            ax.hist(values, bins=bins, weights=weights, color=color, alpha=0.35)
            ax.hist(values, bins=bins, weights=weights, color=color, histtype="step", linewidth=1.5)
            median = float(np.median(values))
            ax.axvline(median, color=color, linestyle="--", linewidth=1.2)
            ax.plot([], [], color=color, label=f"{KIND_LABELS[kind]} (n={len(values)}, median {median:.2f})")
        ax.set_title(scorer)
        ax.set_xlabel("score")
        ax.set_ylabel("fraction of units")
        ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _bins(low: float, high: float, count: int) -> list[float]:
    """`count` equal bins over [low, high], widened by 0.5 each way when the range is a point."""
    if math.isclose(low, high):
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, count + 1).tolist()


def plot_density_histogram(densities: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """Histogram of log10 activation density per kind; units that never fired are counted apart.

    `densities` is {"neuron": densities, "feature": densities}, each a fraction of tokens in [0, 1].
    """
    fig = Figure(figsize=(5.6, 2.9), layout="constrained")
    ax = fig.subplots()
    positive = [d for values in densities.values() for d in values if d > 0]
    if not positive:
        ax.text(0.5, 0.5, "no unit ever fired", ha="center", va="center", transform=ax.transAxes)
        return _save(fig, path)
    logs = np.log10(positive)
    bins = _bins(float(logs.min()), float(logs.max()), 30)
    for kind in ("neuron", "feature"):
        values = np.asarray(densities.get(kind, []), float)
        if len(values) == 0:
            continue
        dead = int((values <= 0).sum())
        label = f"{KIND_LABELS[kind]} (n={len(values)}" + (f", {dead} never fired)" if dead else ")")
        ax.hist(np.log10(values[values > 0]), bins=bins, color=KIND_COLORS[kind], alpha=0.45, label=label)
    ax.set_xlabel("log10 activation density (fraction of tokens where the unit fires)")
    ax.set_ylabel("units")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_score_vs_density(
    points: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | Path, scorer: str = "simulation"
) -> Path:
    """Each unit's score against its log10 activation density, neurons and features in one panel,
    with each kind's running median (20 density bins) so a density confound shows as a slope.

    `points` is {kind: (densities, scores)}; units that never fired are left out.
    """
    fig = Figure(figsize=(5.6, 3.6), layout="constrained")
    ax = fig.subplots()
    for kind in ("neuron", "feature"):
        density, score = (np.asarray(v, float) for v in points.get(kind, ([], [])))
        keep = density > 0
        if not keep.any():
            continue
        x, y = np.log10(density[keep]), score[keep]
        color = KIND_COLORS[kind]
        ax.scatter(x, y, s=4, alpha=0.25, color=color, label=f"{KIND_LABELS[kind]} (n={len(x)})")
        edges = _bins(float(x.min()), float(x.max()), 20)
        which = np.clip(np.digitize(x, edges) - 1, 0, len(edges) - 2)
        centres = [(edges[i] + edges[i + 1]) / 2 for i in range(len(edges) - 1) if (which == i).sum() >= 5]
        medians = [float(np.median(y[which == i])) for i in range(len(edges) - 1) if (which == i).sum() >= 5]
        ax.plot(centres, medians, color=color, linewidth=2)
    ax.set_xlabel("log10 activation density (fraction of tokens where the unit fires)")
    ax.set_ylabel(f"{scorer} score")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)
