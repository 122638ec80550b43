"""What a careful reviewer asks of a "features beat neurons" number, computed from the catalog.

Each section is a plain function over catalog entries and goes into the comparison report:

    uncertainty  means and medians with 95% CIs from a two-level bootstrap (units, and the examples
                 inside each unit), so scorers whose values sit on a grid still get honest intervals
    strata       each scorer's value within each stratum of examples (top, quantile, random,
                 hard_negative; silent and Bills 5 + 5 where present)
    ceiling      the token-lookup ceiling per unit (see scoring.ceiling) and each explanation's
                 simulation score as a fraction of it
    density      score against activation density within each kind (Spearman), and density medians
    controls     each control's scores, summarised the same way (see autointerp.controls)
    coverage     how much of the explanations the simulator's language parsed (offline simulator)
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr

from autointerp.compare import KINDS, StatSummary, latest_explanation, score_of, valid_value
from autointerp.records import CatalogEntry, Score
from autointerp.scoring.ceiling import lookup_ceiling
from autointerp.scoring.examples import PROTOCOL_VERSION, STRATA

N_EXAMPLE_DRAWS = 200  # example-level resamples per unit
STRATUM_PARTS = (*STRATA, "silent", "bills")
CEILING_FLOOR = 0.1  # fractions of the ceiling only for units whose ceiling reaches this correlation


def _rng(*keys: str) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(k.encode()) for k in keys])


def summarize(
    values: Sequence[float], key: str, draws: np.ndarray | None = None, n_resamples: int = 1000
) -> StatSummary | None:
    """Bootstrap over units; with `draws` [n_units, R] (each unit's value re-computed on resampled
    examples) every resample also takes one example-level draw per unit. None for no values."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return None
    rng = _rng("summary", key)
    means, medians = np.empty(n_resamples), np.empty(n_resamples)
    for r in range(n_resamples):
        units = rng.integers(0, len(v), len(v))
        sample = v[units] if draws is None else draws[units, r % draws.shape[1]]
        means[r], medians[r] = sample.mean(), np.median(sample)
    ci = lambda d: (float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5)))
    return StatSummary(
        n=len(v), mean=float(v.mean()), mean_ci95=ci(means), median=float(np.median(v)), median_ci95=ci(medians)
    )


def example_draws(score: Score, n: int = N_EXAMPLE_DRAWS, seed: int = 0) -> np.ndarray:
    """The score recomputed on `n` resamples (with replacement) of its own examples; where a
    resample leaves it undefined (constant activations, an empty class) the score's value stands."""
    value = float(score.value or 0.0)
    details = score.details
    if not details:
        return np.full(n, value)
    rng = _rng("examples", score.scorer, f"{score.unit_kind}:{score.unit_index}", str(seed))
    picks = rng.integers(0, len(details), size=(n, len(details)))
    if score.scorer == "simulation":
        stats = np.array([_moments(d.predicted, d.actual) for d in details])  # [examples, 6]
        s = stats[picks].sum(axis=1)  # [n, 6]: count, Σp, Σa, Σp², Σa², Σpa
        cov = s[:, 5] - s[:, 1] * s[:, 2] / s[:, 0]
        var_p = s[:, 3] - s[:, 1] ** 2 / s[:, 0]
        var_a = s[:, 4] - s[:, 2] ** 2 / s[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(var_p > 1e-12, cov / np.sqrt(var_p * var_a), 0.0)
        return np.where(var_a > 1e-12, np.clip(r, -1, 1), value)
    answers = np.array([float(d.predicted) for d in details]) > 0.5  # type: ignore[arg-type]
    actual = np.array([float(d.actual) for d in details]) > 0.5  # type: ignore[arg-type]
    said, was = answers[picks], actual[picks]  # [n, examples]: the balanced accuracy of each resample
    positives, negatives = was.sum(axis=1), (~was).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = 0.5 * ((said & was).sum(axis=1) / positives + (~said & ~was).sum(axis=1) / negatives)
    return np.where((positives > 0) & (negatives > 0), accuracy, value)


def _moments(predicted: object, actual: object) -> tuple[float, ...]:
    p = np.asarray(predicted, dtype=float)
    a = np.asarray(actual, dtype=float)
    return (float(len(p)), p.sum(), a.sum(), (p * p).sum(), (a * a).sum(), (p * a).sum())


def chosen_scores(
    entries: Sequence[CatalogEntry], scorer: str, explainer: str, simulator: str | None
) -> dict[str, list[tuple[CatalogEntry, Score]]]:
    """Per kind, (entry, score) for every unit whose explanation from `explainer` has a valid score."""
    out: dict[str, list[tuple[CatalogEntry, Score]]] = {kind: [] for kind in KINDS}
    for entry in entries:
        explanation = latest_explanation(entry, explainer)
        score = score_of(entry, explanation, scorer, simulator or None) if explanation else None
        if score is not None and valid_value(score) is not None:
            out[entry.harvest.kind].append((entry, score))
    return out


def chosen_value(score: Score) -> float:
    """The value of a score `chosen_scores` picked (it keeps only valid ones)."""
    value = valid_value(score)
    assert value is not None, "chosen_scores keeps only scores with a valid value"
    return value


def uncertainty_section(
    chosen: dict[str, list[tuple[CatalogEntry, Score]]], scorer: str
) -> dict[str, StatSummary | None]:
    """Per kind: the scorer's summary with the two-level (units x examples) bootstrap."""
    out = {}
    for kind, pairs in chosen.items():
        values = [chosen_value(s) for _, s in pairs]
        draws = np.stack([_draws(e, s) for e, s in pairs]) if pairs else None
        out[kind] = summarize(values, f"{scorer}:{kind}:two-level", draws)
    return out


def strata_section(
    chosen: dict[str, list[tuple[CatalogEntry, Score]]], scorer: str
) -> dict[str, dict[str, StatSummary]]:
    """Per kind, per stratum: the units' within-stratum values (units where it is defined)."""
    out: dict[str, dict[str, StatSummary]] = {}
    for kind, pairs in chosen.items():
        rows = {}
        for stratum in STRATUM_PARTS:
            values = [s.parts[stratum] for _, s in pairs if isinstance(s.parts.get(stratum), (int, float))]
            summary = summarize(
                [float(v) for v in values if v is not None and math.isfinite(v)], f"{scorer}:{kind}:{stratum}"
            )
            if summary is not None:
                rows[stratum] = summary
        out[kind] = rows
    return out


def protocol_of(score: Score) -> int:
    """The scoring protocol a stored score followed, read off the strata of its examples."""
    return PROTOCOL_VERSION if any(d.sampling in ("quantile", "hard_negative") for d in score.details) else 1


# ---- slim entries: what the report needs of a unit, without its examples --------------------------

_FACTS = "validity"  # the key in CatalogEntry.extra


def _score_key(score: Score) -> tuple[str, str, str]:
    return (score.scorer, score.explanation_settings_hash, score.settings_hash)


def slim_entry(entry: CatalogEntry) -> CatalogEntry:
    """The entry without its examples and per-example score details, carrying instead what the
    report computes from them (each score's example-level draws and protocol, the lookup ceiling):
    a catalog of any size then fits in memory for the report, one full unit read at a time."""
    protocols = {_score_key(s): protocol_of(s) for s in entry.scores}
    facts = {
        "draws": {_score_key(s): example_draws(s) for s in entry.scores if not s.failed and s.value is not None},
        "protocols": protocols,
        "ceilings": {p: lookup_ceiling(entry.harvest, p)["all"] for p in set(protocols.values())},  # type: ignore[arg-type]
    }
    return entry.model_copy(
        update={
            "harvest": entry.harvest.model_copy(update={"examples": []}),
            "scores": [s.model_copy(update={"details": []}) for s in entry.scores],
            "extra": {**entry.extra, _FACTS: facts},
        }
    )


def _draws(entry: CatalogEntry, score: Score) -> np.ndarray:
    facts = entry.extra.get(_FACTS)
    return facts["draws"][_score_key(score)] if facts else example_draws(score)


def score_protocol(entry: CatalogEntry, score: Score) -> int:
    """`protocol_of(score)`, also for a slim entry's scores (whose details are gone)."""
    facts = entry.extra.get(_FACTS)
    return facts["protocols"][_score_key(score)] if facts else protocol_of(score)


def _ceiling(entry: CatalogEntry, score: Score) -> float | None:
    facts, protocol = entry.extra.get(_FACTS), score_protocol(entry, score)
    return facts["ceilings"][protocol] if facts else lookup_ceiling(entry.harvest, protocol)["all"]  # type: ignore[arg-type,return-value]


def ceiling_section(
    simulation: dict[str, list[tuple[CatalogEntry, Score]]],
) -> dict[str, dict[str, StatSummary | None]]:
    """Per kind: the lookup ceiling, and explanation score / ceiling where the ceiling >= CEILING_FLOOR."""
    out = {}
    for kind, pairs in simulation.items():
        ceilings, fractions = [], []
        for entry, score in pairs:
            ceiling = _ceiling(entry, score)
            if ceiling is None:
                continue
            ceilings.append(ceiling)
            if ceiling >= CEILING_FLOOR:
                fractions.append(chosen_value(score) / ceiling)
        out[kind] = {
            "ceiling": summarize(ceilings, f"ceiling:{kind}"),
            "explanation_fraction": summarize(fractions, f"ceiling-fraction:{kind}"),
        }
    return out


def density_section(chosen: dict[str, list[tuple[CatalogEntry, Score]]]) -> dict[str, dict[str, float | None]]:
    """Per kind: median density and the Spearman correlation of score with density."""
    out = {}
    for kind, pairs in chosen.items():
        density = [e.harvest.stats.density for e, _ in pairs]
        values = [chosen_value(s) for _, s in pairs]
        rho = p = None
        if len(pairs) >= 3 and np.ptp(density) > 0 and np.ptp(values) > 0:
            result = spearmanr(density, values)
            rho, p = float(result.statistic), float(result.pvalue)
        out[kind] = {"n": float(len(pairs)), "median_density": float(np.median(density)) if density else None,
                     "spearman_score_vs_density": rho, "p_value": p}  # fmt: skip
    return out


def coverage_section(chosen: dict[str, list[tuple[CatalogEntry, Score]]]) -> dict[str, float | None]:
    """Per kind: the mean share of each explanation the simulator parsed (None if it does not say)."""
    out = {}
    for kind, pairs in chosen.items():
        values = [s.parts["parse_coverage"] for _, s in pairs if s.parts.get("parse_coverage") is not None]
        out[kind] = float(np.mean(values)) if values else None  # type: ignore[arg-type]
    return out


def density_points(chosen: dict[str, list[tuple[CatalogEntry, Score]]]) -> dict[str, tuple[list[float], list[float]]]:
    """Per kind: (densities, scores), the input of the score-vs-density plot."""
    return {
        kind: ([e.harvest.stats.density for e, _ in pairs], [chosen_value(s) for _, s in pairs])
        for kind, pairs in chosen.items()
    }


def budget_section(entries: Sequence[CatalogEntry], explainer: str) -> dict[str, dict[str, float | None]]:
    """Per kind: how often the explainer's length budget cut an explanation short (from the
    explainer's own `meta`: "binding", "named", "candidates"), so a cap that binds for one kind
    only shows up. Empty values when the explainer does not report it."""
    out: dict[str, dict[str, float | None]] = {}
    for kind in KINDS:
        metas = [
            e.meta
            for e in (latest_explanation(x, explainer) for x in entries if x.harvest.kind == kind)
            if e and e.meta
        ]
        binding = [bool(m["binding"]) for m in metas if "binding" in m]
        named = [float(m["named"]) for m in metas if "named" in m]
        candidates = [float(m["candidates"]) for m in metas if "candidates" in m]
        out[kind] = {
            "explanations": float(len(metas)),
            "binding_fraction": float(np.mean(binding)) if binding else None,
            "median_named": float(np.median(named)) if named else None,
            "median_candidates": float(np.median(candidates)) if candidates else None,
        }
    return out
