"""Neurons vs features: the headline question, answered with numbers and their uncertainty.

For each scorer, the scores of neurons and of features are summarised (n, mean, median, each with a
seeded bootstrap 95% CI), compared by the difference of medians (features - neurons, with its own
bootstrap CI) and tested with a two-sided Mann-Whitney U test. Medians lead because scores are
bounded and skewed, so a few dead or uninterpretable units would drag means around.

Which score counts for a unit: its explanation from the chosen explainer (label: explainer, model,
prompt version), and that explanation's score under the scorer from the chosen simulator; when a
choice is ambiguous the caller must make it, nothing is picked silently. Failed scores (value None, NaN, or marked failed) are
excluded and counted, never treated as zero.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from scipy.stats import mannwhitneyu

from autointerp.errors import UserError
from autointerp.query.imports.labels import IMPORTED_PREFIX
from autointerp.records import CatalogEntry, Explanation, Score, UnitKind

PRIMARY_SCORER = "simulation"
KINDS: tuple[UnitKind, UnitKind] = ("neuron", "feature")
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
SCORE_PLOT = "score_distributions.png"
# Bootstrap draws are made in chunks of at most this many indices, so memory stays bounded for
# catalogs with tens of thousands of units.
_BOOTSTRAP_CHUNK = 4_000_000


class KindSummary(BaseModel):
    """Scores of one unit kind under one scorer."""

    kind: UnitKind
    n: int  # units with a valid score
    n_failed: int  # units whose score failed (excluded from every statistic)
    n_unscored: int  # units with no explanation or no score under this scorer
    mean: float
    mean_ci95: tuple[float, float]
    median: float
    median_ci95: tuple[float, float]
    values: list[float] = Field(default_factory=list)  # the valid scores, for plots and re-analysis


class Difference(BaseModel):
    """features - neurons, with a bootstrap 95% CI."""

    value: float
    ci95: tuple[float, float]


class ScorerComparison(BaseModel):
    """Neurons vs features under one scorer."""

    scorer: str
    explainer: str  # explanation label, see `explanation_label`
    simulator: str = ""  # whose scores these are
    neurons: KindSummary
    features: KindSummary
    median_difference: Difference
    mean_difference: Difference
    p_value: float  # two-sided Mann-Whitney U
    u_statistic: float  # U of the features sample
    # U / (n_features * n_neurons): the chance a random feature outscores a random neuron (ties 1/2).
    prob_feature_higher: float


class StatSummary(BaseModel):
    """One sample of per-unit values: size, mean and median, each with a bootstrap 95% CI."""

    n: int
    mean: float
    mean_ci95: tuple[float, float]
    median: float
    median_ci95: tuple[float, float]


class ComparisonReport(ScorerComparison):
    """The primary scorer's comparison at top level, every scorer's under `by_scorer`; the validity
    sections (see `autointerp.validity_report.add_validity`) when they were computed."""

    by_scorer: dict[str, ScorerComparison]
    skipped_scorers: dict[str, str] = Field(default_factory=dict)  # scorer -> why it is not compared
    n_resamples: int
    seed: int
    protocol_version: int | None = None
    uncertainty: dict[str, dict[str, StatSummary | None]] = Field(default_factory=dict)  # scorer -> kind
    strata: dict[str, dict[str, dict[str, StatSummary]]] = Field(default_factory=dict)  # kind -> scorer -> stratum
    ceiling: dict[str, dict[str, StatSummary | None]] = Field(default_factory=dict)  # kind -> ceiling / fraction
    density: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    parse_coverage: dict[str, dict[str, float | None]] = Field(default_factory=dict)  # scorer -> kind
    controls: dict[str, dict[str, dict[str, StatSummary]]] = Field(default_factory=dict)  # control -> kind -> scorer
    explanation_budget: dict[str, dict[str, float | None]] = Field(default_factory=dict)  # kind -> binding
    measures: dict[str, str] = Field(default_factory=dict)
    conclusions: list[str] = Field(default_factory=list)
    imported: dict[str, dict[str, dict[str, float]]] = Field(default_factory=dict)  # imported -> kind -> stats
    splitting: list[dict[str, Any]] = Field(default_factory=list)  # autointerp.analysis.family.LevelSummary dumps


# --- which explanation and score count for a unit -------------------------------------------------


def explainer_label(explainer: str, model: str | None, prompt_version: str | None) -> str:
    """What tells explanation sources apart: explainer, model and prompt version, e.g.
    'llm / openai:gpt-4o-mini / explain-v2' or 'offline-ngram'."""
    return " / ".join(x for x in (explainer, model, prompt_version) if x)


def explanation_label(explanation: Explanation) -> str:
    return explainer_label(explanation.explainer, explanation.model, explanation.prompt_version)


def explainers_in(entries: Sequence[CatalogEntry]) -> list[str]:
    """Every explanation label present, sorted."""
    return sorted({explanation_label(e) for entry in entries for e in entry.explanations})


def scorers_in(entries: Sequence[CatalogEntry]) -> list[str]:
    """Every scorer name present, sorted, with the primary scorer first."""
    names = {s.scorer for entry in entries for s in entry.scores}
    return sorted(names, key=lambda name: (name != PRIMARY_SCORER, name))


def resolve_explainer(entries: Sequence[CatalogEntry], explainer: str | None) -> str:
    """The explanation label to compare: the only one present, the one given, or the only label of
    the explainer name given (so 'llm' works while a single LLM model explained the catalog)."""
    labels = explainers_in(entries)
    if not labels:
        raise UserError("No unit in the catalog has an explanation, so there is nothing to compare.")
    if explainer is None:
        # imported labels get their own section of the report, beside the explainer compared here
        ours = [label for label in labels if not label.startswith(IMPORTED_PREFIX)] or labels
        if len(ours) > 1:
            raise UserError(f"The catalog holds explanations from several explainers {ours}; choose one.")
        return ours[0]
    if explainer in labels:
        return explainer
    by_name = sorted(
        {explanation_label(e) for entry in entries for e in entry.explanations if e.explainer == explainer}
    )
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        raise UserError(f"Explainer {explainer!r} ran with several settings {by_name}; choose one of them.")
    raise UserError(f"No unit was explained by explainer {explainer!r}; explainers present: {labels}.")


def latest_explanation(entry: CatalogEntry, label: str | None = None) -> Explanation | None:
    """The unit's explanation with this label (any label when None); the last listed if several."""
    for explanation in reversed(entry.explanations):
        if label is None or explanation_label(explanation) == label:
            return explanation
    return None


def score_of(entry: CatalogEntry, explanation: Explanation, scorer: str, simulator: str | None = None) -> Score | None:
    """The explanation's score under the scorer (and simulator, when given), failed or not."""
    for score in reversed(entry.scores):
        if (
            score.scorer == scorer
            and score.explanation_settings_hash == explanation.settings_hash
            and (simulator is None or score.simulator == simulator)
        ):
            return score
    return None


def resolve_simulator(entries: Sequence[CatalogEntry], scorer: str, explainer: str, simulator: str | None) -> str:
    """The simulator whose scores count: the one given, or the only one that scored these explanations.

    Two simulators' scores are never mixed or picked between silently."""
    used = set()
    for entry in entries:
        explanation = latest_explanation(entry, explainer)
        if explanation is None:
            continue
        used |= {
            s.simulator
            for s in entry.scores
            if s.scorer == scorer and s.explanation_settings_hash == explanation.settings_hash
        }
    if simulator is not None:
        return simulator
    if len(used) > 1:
        raise UserError(f"{scorer!r} scores come from several simulators {sorted(used)}; choose one.")
    return next(iter(used), "")


def valid_value(score: Score | None) -> float | None:
    """The score's value, or None when it is missing or failed (None, NaN, infinite, marked failed)."""
    if score is None or score.failed or score.value is None or not math.isfinite(score.value):
        return None
    return float(score.value)


# --- statistics ------------------------------------------------------------------------------------


def _bootstrap(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Means and medians of `n_resamples` resamples (with replacement) of `values`."""
    n = len(values)
    means = np.empty(n_resamples)
    medians = np.empty(n_resamples)
    chunk = max(1, _BOOTSTRAP_CHUNK // n)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        resampled = values[rng.integers(0, n, size=(stop - start, n))]
        means[start:stop] = resampled.mean(axis=1)
        medians[start:stop] = np.median(resampled, axis=1)
    return means, medians


def _ci95(draws: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def _rng(seed: int, scorer: str, kind: UnitKind) -> np.random.Generator:
    """One independent stream per (scorer, kind), so adding a scorer never changes another's CIs."""
    return np.random.default_rng([seed, zlib.crc32(scorer.encode()), KINDS.index(kind)])


def compare_samples(
    neuron_scores: Sequence[float],
    feature_scores: Sequence[float],
    *,
    scorer: str = PRIMARY_SCORER,
    explainer: str = "",
    simulator: str = "",
    n_resamples: int = 2000,
    seed: int = 0,
    neuron_failed: int = 0,
    feature_failed: int = 0,
    neuron_unscored: int = 0,
    feature_unscored: int = 0,
) -> ScorerComparison:
    """Compare two samples of valid scores; the statistics behind `compare`."""
    if n_resamples < 1:
        raise UserError(f"n_resamples must be at least 1, got {n_resamples}.")
    samples = {"neuron": np.asarray(neuron_scores, float), "feature": np.asarray(feature_scores, float)}
    counts = {"neuron": (neuron_failed, neuron_unscored), "feature": (feature_failed, feature_unscored)}
    summaries: dict[str, KindSummary] = {}
    draws: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for kind in KINDS:
        values = samples[kind]
        failed, unscored = counts[kind]
        if len(values) == 0:
            raise UserError(
                f"No {kind} has a valid {scorer!r} score ({failed} failed, {unscored} unscored); "
                f"score some {kind}s before comparing."
            )
        if not np.all(np.isfinite(values)):
            raise UserError(f"The {kind} {scorer!r} scores contain NaN or infinite values.")
        means, medians = _bootstrap(values, n_resamples, _rng(seed, scorer, kind))
        draws[kind] = (means, medians)
        summaries[kind] = KindSummary(
            kind=kind,
            n=len(values),
            n_failed=failed,
            n_unscored=unscored,
            mean=float(values.mean()),
            mean_ci95=_ci95(means),
            median=float(np.median(values)),
            median_ci95=_ci95(medians),
            values=values.tolist(),
        )
    neurons, features = summaries["neuron"], summaries["feature"]
    u_statistic, p_value = mannwhitneyu(samples["feature"], samples["neuron"], alternative="two-sided")
    if not math.isfinite(p_value):  # every score tied: no evidence of any difference
        p_value = 1.0
    return ScorerComparison(
        scorer=scorer,
        explainer=explainer,
        simulator=simulator,
        neurons=neurons,
        features=features,
        median_difference=Difference(
            value=features.median - neurons.median, ci95=_ci95(draws["feature"][1] - draws["neuron"][1])
        ),
        mean_difference=Difference(
            value=features.mean - neurons.mean, ci95=_ci95(draws["feature"][0] - draws["neuron"][0])
        ),
        p_value=float(p_value),
        u_statistic=float(u_statistic),
        prob_feature_higher=float(u_statistic) / (features.n * neurons.n),
    )


@dataclass
class _KindTally:
    """One kind's valid values and how many of its units failed or were never scored."""

    values: list[float] = field(default_factory=list)
    failed: int = 0
    unscored: int = 0


def _collect(entries: Sequence[CatalogEntry], scorer: str, explainer: str, simulator: str) -> dict[str, _KindTally]:
    collected: dict[str, _KindTally] = {k: _KindTally() for k in KINDS}
    for entry in entries:
        bucket = collected[entry.harvest.kind]
        explanation = latest_explanation(entry, explainer)
        score = score_of(entry, explanation, scorer, simulator or None) if explanation is not None else None
        value = valid_value(score)
        if value is not None:
            bucket.values.append(value)
        elif score is not None:
            bucket.failed += 1
        else:
            bucket.unscored += 1
    return collected


def _compare_one(
    entries: Sequence[CatalogEntry], scorer: str, explainer: str, simulator: str | None, n_resamples: int, seed: int
) -> ScorerComparison:
    simulator = resolve_simulator(entries, scorer, explainer, simulator)
    c = _collect(entries, scorer, explainer, simulator)
    return compare_samples(
        c["neuron"].values,
        c["feature"].values,
        scorer=scorer,
        explainer=explainer,
        simulator=simulator,
        n_resamples=n_resamples,
        seed=seed,
        neuron_failed=c["neuron"].failed,
        feature_failed=c["feature"].failed,
        neuron_unscored=c["neuron"].unscored,
        feature_unscored=c["feature"].unscored,
    )


def compare(
    entries: Sequence[CatalogEntry],
    *,
    scorer: str = PRIMARY_SCORER,
    explainer: str | None = None,
    simulator: str | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
) -> ComparisonReport:
    """Compare neuron and feature scores under every scorer present; `scorer` is the headline one.

    `explainer` is an explanation label (see `explanation_label`) or an explainer name; `simulator`
    picks whose scores count when several simulators scored the same explanations.
    Raises UserError when either kind has no valid score under the primary scorer. Other scorers
    where a kind has no valid score are listed in `skipped_scorers` with the reason.
    """
    explainer = resolve_explainer(entries, explainer)
    primary = _compare_one(entries, scorer, explainer, simulator, n_resamples, seed)
    by_scorer: dict[str, ScorerComparison] = {scorer: primary}
    skipped: dict[str, str] = {}
    for other in scorers_in(entries):
        if other == scorer:
            continue
        try:
            by_scorer[other] = _compare_one(entries, other, explainer, simulator, n_resamples, seed)
        except UserError as exc:
            skipped[other] = str(exc)
    return ComparisonReport(
        **primary.model_dump(), by_scorer=by_scorer, skipped_scorers=skipped, n_resamples=n_resamples, seed=seed
    )


# --- writing ---------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _fmt_ci(ci: tuple[float, float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


P_FLOOR = 1e-10  # smaller p-values are printed as a bound: the test's assumptions are not that exact


def _fmt_p(p: float) -> str:
    if p < P_FLOOR:
        return f"< {P_FLOOR:.0e}"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def verdict(comparison: ScorerComparison) -> str:
    """One sentence saying what the median difference's CI supports."""
    d = comparison.median_difference
    low, high = d.ci95
    if low > 0:
        return f"Features score higher than neurons: the median difference is {_fmt(d.value)} {_fmt_ci(d.ci95)}, a CI above 0."
    if high < 0:
        return f"Neurons score higher than features: the median difference is {_fmt(d.value)} {_fmt_ci(d.ci95)}, a CI below 0."
    return f"No clear difference: the median difference is {_fmt(d.value)} {_fmt_ci(d.ci95)}, a CI that includes 0."


def summary_rows(report: ComparisonReport) -> list[list[str]]:
    """The summary table (header first) shared by report.md and the HTML catalog's front page."""
    rows = [
        [
            "scorer",
            "neurons n (failed)",
            "neurons median [95% CI]",
            "features n (failed)",
            "features median [95% CI]",
            "median difference, features - neurons [95% CI]",
            "Mann-Whitney p",
        ]
    ]
    for name, c in report.by_scorer.items():
        rows.append(
            [
                name,
                f"{c.neurons.n} ({c.neurons.n_failed})",
                f"{_fmt(c.neurons.median)} {_fmt_ci(c.neurons.median_ci95)}",
                f"{c.features.n} ({c.features.n_failed})",
                f"{_fmt(c.features.median)} {_fmt_ci(c.features.median_ci95)}",
                f"{_fmt(c.median_difference.value)} {_fmt_ci(c.median_difference.ci95)}",
                _fmt_p(c.p_value),
            ]
        )
    return rows


def report_markdown(report: ComparisonReport, plot_name: str | None = SCORE_PLOT) -> str:
    """A readable report: verdict, table, means, the plot."""
    rows = summary_rows(report)
    lines = [
        "# Neurons vs features",
        "",
        (
            f"Explainer `{report.explainer}`, primary scorer `{report.scorer}` (simulator `{report.simulator}`); "
            f"bootstrap CIs from {report.n_resamples} resamples (seed {report.seed}); "
            "p from a two-sided Mann-Whitney U test. Failed scores are excluded and counted."
        ),
        "",
        f"**{verdict(report)}**",
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
    ]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows[1:]]
    lines += ["", "Means:", ""]
    for name, c in report.by_scorer.items():
        lines.append(
            f"- `{_md_cell(name)}`: neurons {_fmt(c.neurons.mean)} {_fmt_ci(c.neurons.mean_ci95)}, "
            f"features {_fmt(c.features.mean)} {_fmt_ci(c.features.mean_ci95)}; "
            f"P(feature > neuron) = {c.prob_feature_higher:.3f}"
        )
    if report.skipped_scorers:
        lines += ["", "Not compared:", ""]
        lines += [f"- `{_md_cell(name)}`: {_md_cell(why)}" for name, why in report.skipped_scorers.items()]
    if plot_name:
        lines += ["", f"![Score distributions, neurons vs features]({plot_name})"]
    from autointerp.analysis.family import splitting_markdown  # these build on this module
    from autointerp.query.imported_comparison import imported_markdown
    from autointerp.validity_report import validity_markdown

    return (
        "\n".join(lines) + "\n\n" + validity_markdown(report) + imported_markdown(report) + splitting_markdown(report)
    )


def score_samples(report: ComparisonReport) -> dict[str, dict[str, list[float]]]:
    """{scorer: {"neuron": values, "feature": values}}, the input of the score plot."""
    return {name: {"neuron": c.neurons.values, "feature": c.features.values} for name, c in report.by_scorer.items()}


def write_report(report: ComparisonReport, out_dir: str | Path) -> Path:
    """Write report.json, report.md and score_distributions.png into out_dir; return report.json's path."""
    from autointerp.plots import plot_score_distributions  # matplotlib only when writing

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_score_distributions(score_samples(report), out / SCORE_PLOT)
    (out / REPORT_MD).write_text(report_markdown(report), encoding="utf-8")
    path = out / REPORT_JSON
    path.write_text(json.dumps(report.model_dump(mode="json"), indent=2, allow_nan=False), encoding="utf-8")
    return path
