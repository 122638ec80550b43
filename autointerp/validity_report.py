"""The reviewer's part of the report: the validity sections joined to the comparison, stated plainly.

`add_validity` fills the comparison report's `protocol_version`, `uncertainty`, `strata`, `ceiling`,
`density`, `parse_coverage`, `controls` and `conclusions`; `validity_markdown` renders them for
report.md (and the HTML front page). Conclusions are computed from the numbers, whatever they say.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from autointerp.compare import ComparisonReport, StatSummary, compare, resolve_explainer
from autointerp.controls import SHUFFLED_EXPLAINER
from autointerp.errors import UserError
from autointerp.plots import plot_score_vs_density
from autointerp.query.imported_comparison import add_imported_comparison
from autointerp.records import CatalogEntry
from autointerp.store import open_store
from autointerp.validity import (
    budget_section,
    ceiling_section,
    chosen_scores,
    chosen_value,
    coverage_section,
    density_points,
    density_section,
    score_protocol,
    strata_section,
    summarize,
    uncertainty_section,
)

DENSITY_PLOT = "score_vs_density.png"

KIND_NAMES = {"neuron": "neurons", "feature": "features"}
# What each number measures, for readers of report.md and the HTML front page.
MEASURES = {
    "simulation": "Pearson correlation between the simulator's per-token predictions (from the explanation alone) "
    "and the real activations, pooled over the protocol's score-split windows; per stratum within those windows.",
    "detection": "balanced accuracy of saying which score-split windows activate the unit (positives across "
    "activation quantiles; negatives quiet random windows and hard negatives).",
    "fuzzing": "balanced accuracy of telling right highlighted tokens from wrong ones (the same number of marks in "
    "every window; wrong marks include the unit's trigger where it stays quiet).",
    "offline": "With the offline explainer and simulator these are token-pattern explainability scores in the spirit "
    "of Neuron-to-Graph (Foote et al. 2023) and Gao et al. 2024's N2G metric: how well a short pattern "
    "description predicts the unit. They do not measure how a person or an LLM would read the explanation.",
    "ceiling": "A lookup table of (previous token, token) mean activations fitted on the explain split, scored like "
    "the simulation scorer: how lexical the unit is. `explanation_fraction` is the explanation's score over it.",
}


def build_report(
    entries: Sequence[CatalogEntry], scorer: str, explainer: str | None, controls_db: Path | None, out: Path
) -> ComparisonReport:
    """The comparison with every validity section, the controls read from `controls_db` when it
    exists, and the score-vs-density plot written into `out`. Raises UserError when either kind
    has no valid score."""
    report = add_validity(compare(entries, scorer=scorer, explainer=explainer), entries, control_entries(controls_db))
    report = add_imported_comparison(report, entries)  # imported labels vs ours on the same units
    chosen = chosen_scores(entries, report.scorer, report.explainer, report.simulator)
    plot_score_vs_density(density_points(chosen), Path(out) / DENSITY_PLOT, report.scorer)
    return report


def control_entries(controls_db: Path | None) -> dict[str, list[CatalogEntry]]:
    """{control name: its catalog entries} from a controls.db (empty without one), without examples
    or per-example score details: the controls' summaries need only each score's value, and the
    details of six controls' scores would take most of a GB."""
    if controls_db is None or not controls_db.exists():
        return {}
    store = open_store(controls_db)
    try:
        return {
            name.removeprefix("control:"): [
                entry.model_copy(update={"scores": [s.model_copy(update={"details": []}) for s in entry.scores]})
                for entry in store.catalog_entries(name, examples=False)
            ]
            for name in store.sources()
        }
    finally:
        store.close()


def add_validity(
    report: ComparisonReport,
    entries: Sequence[CatalogEntry],
    controls: Mapping[str, Sequence[CatalogEntry]] | None = None,
) -> ComparisonReport:
    """The comparison report with every validity section filled from `entries` (the compared units)
    and `controls` ({control name: its entries}, e.g. from controls.db)."""
    strata: dict[str, dict[str, dict[str, StatSummary]]] = {kind: {} for kind in KIND_NAMES}
    uncertainty, coverage, protocol = {}, {}, None
    for scorer, comparison in report.by_scorer.items():
        chosen = chosen_scores(entries, scorer, report.explainer, comparison.simulator)
        uncertainty[scorer] = uncertainty_section(chosen, scorer)
        for kind, rows in strata_section(chosen, scorer).items():
            strata[kind][scorer] = rows
        coverage[scorer] = coverage_section(chosen)
        if protocol is None and any(chosen.values()):
            protocol = score_protocol(*next(pair for pairs in chosen.values() for pair in pairs))
    primary = chosen_scores(entries, report.scorer, report.explainer, report.simulator)
    simulation = (
        chosen_scores(entries, "simulation", report.explainer, None) if "simulation" in report.by_scorer else {}
    )
    updated = report.model_copy(
        update={
            "protocol_version": protocol,
            "uncertainty": uncertainty,
            "strata": strata,
            "ceiling": ceiling_section(simulation) if simulation else {},
            "density": density_section(primary),
            "parse_coverage": coverage,
            "controls": control_summaries(report, controls or {}),
            "explanation_budget": budget_section(entries, report.explainer),
            "measures": MEASURES,
        }
    )
    return updated.model_copy(update={"conclusions": conclusions(updated)})


def control_summaries(
    report: ComparisonReport, controls: Mapping[str, Sequence[CatalogEntry]]
) -> dict[str, dict[str, dict[str, StatSummary]]]:
    """{control: {kind: {scorer: summary}}}, each control scored with the run's explainer (the
    shuffled one with its swapped explanations) and simulator."""
    out: dict[str, dict[str, dict[str, StatSummary]]] = {}
    for name, entries in controls.items():
        try:
            label = resolve_explainer(entries, SHUFFLED_EXPLAINER if name == "shuffled" else report.explainer)
        except UserError:
            continue  # nothing explained in this control yet
        rows: dict[str, dict[str, StatSummary]] = {}
        for scorer, comparison in report.by_scorer.items():
            for kind, pairs in chosen_scores(entries, scorer, label, comparison.simulator).items():
                summary = summarize([chosen_value(s) for _, s in pairs], f"control:{name}:{scorer}:{kind}")
                if summary is not None:
                    rows.setdefault(kind, {})[scorer] = summary
        out[name] = rows
    return out


def _median(summary: StatSummary | None) -> str:
    return (
        "n/a"
        if summary is None
        else f"{summary.median:.3f} [{summary.median_ci95[0]:.3f}, {summary.median_ci95[1]:.3f}]"
    )


def conclusions(report: ComparisonReport) -> list[str]:
    """One plain sentence per finding: per scorer, per stratum contrast, per control, ceiling, density."""
    lines = []
    for scorer, c in report.by_scorer.items():
        gap = c.features.median - c.neurons.median
        low, high = c.median_difference.ci95
        direction = "higher" if low > 0 else "lower" if high < 0 else "no different (CI includes 0)"
        lines.append(
            f"{scorer}: features median {c.features.median:.3f} vs neurons {c.neurons.median:.3f} "
            f"(difference {gap:+.3f} [{low:+.3f}, {high:+.3f}]): features score {direction}."
        )
    sim = {kind: report.strata.get(kind, {}).get("simulation", {}) for kind in KIND_NAMES}
    for stratum in ("top", "random", "hard_negative"):
        n, f = sim["neuron"].get(stratum), sim["feature"].get(stratum)
        if n is not None and f is not None:
            lines.append(
                f"simulation within {stratum} windows only: neurons {n.median:.3f} (n {n.n}), "
                f"features {f.median:.3f} (n {f.n})."
            )
    for name, rows in report.controls.items():
        for kind, scorers in rows.items():
            real = report.by_scorer.get(report.scorer)
            control = scorers.get(report.scorer)
            if control is None or real is None:
                continue
            reference = real.features if kind == "feature" else real.neurons
            lines.append(
                f"control {name}, {KIND_NAMES[kind]}: {report.scorer} median {_median(control)} "
                f"vs {reference.median:.3f} for the real {KIND_NAMES[kind]}"
                + _control_note(name, kind, report, control)
            )
    for kind, section in report.ceiling.items():
        ceiling, fraction = section.get("ceiling"), section.get("explanation_fraction")
        if ceiling is not None and fraction is not None:
            lines.append(
                f"token-lookup ceiling, {KIND_NAMES[kind]}: median {ceiling.median:.3f}; explanations reach a "
                f"median {fraction.median:.2f} of it (units with ceiling >= 0.1, n {fraction.n})."
            )
    for kind, b in report.explanation_budget.items():
        if None not in (b.get("binding_fraction"), b.get("median_named"), b.get("median_candidates")):
            lines.append(
                f"explanation budget, {KIND_NAMES[kind]}: cuts {b['binding_fraction']:.0%} of explanations short "
                f"(median {b['median_named']:.0f} patterns named of {b['median_candidates']:.0f} found)."
            )
    for kind, d in report.density.items():
        if d.get("spearman_score_vs_density") is not None:
            rho = d["spearman_score_vs_density"]
            lines.append(
                f"density, {KIND_NAMES[kind]}: median {d['median_density']:.4f} of tokens; Spearman(score, density) "
                f"{rho:+.2f} ({'denser units score lower' if rho < 0 else 'denser units score higher'})."  # type: ignore[operator]
            )
    return lines


def _control_note(name: str, kind: str, report: ComparisonReport, control: StatSummary) -> str:
    real = report.by_scorer[report.scorer]
    if name == "shuffled":
        null = 0.0 if report.scorer == "simulation" else 0.5
        within = abs(control.median - null) <= 0.05
        return f"; a null should sit near {null}: {'it does' if within else 'it does NOT'}."
    if name == "density_matched_neurons":
        low = real.median_difference.ci95[0]
        if low <= 0:
            return "; the features-neurons gap it would explain is not there to begin with (its CI reaches 0)."
        closed = (control.median - real.neurons.median) / real.median_difference.value
        return f"; matching the features' density closes {closed:.0%} of the features-neurons gap."
    reference = real.features if kind == "feature" else real.neurons
    trained = "the trained model's" if name == "random_model" else "the trained SAE's"
    low, high = control.median_ci95
    if low <= reference.median <= high:
        return f"; no different from {trained} {KIND_NAMES[kind]} ({reference.median:.3f}, inside the control's CI)."
    side = "above" if control.median > reference.median else "below"
    return f"; {side} {trained} {KIND_NAMES[kind]} ({reference.median:.3f})."


def validity_tables(report: ComparisonReport) -> list[tuple[str, list[list[str]]]]:
    """(title, rows with the header first) of each validity table, for report.md and the HTML page."""
    tables = []
    rows = [["scorer", "kind", "n", "mean [95% CI]", "median [95% CI]"]]
    for scorer, kinds in report.uncertainty.items():
        for kind, s in kinds.items():
            if s is not None:
                rows.append(
                    [scorer, kind, str(s.n), f"{s.mean:.3f} [{s.mean_ci95[0]:.3f}, {s.mean_ci95[1]:.3f}]", _median(s)]
                )
    tables.append(("Means and medians with 95% CIs over units and examples", rows))
    rows = [["scorer", "stratum", "neurons (n units)", "features (n units)"]]
    for scorer in report.by_scorer:
        strata = sorted({st for kind in KIND_NAMES for st in report.strata.get(kind, {}).get(scorer, {})})
        for stratum in strata:
            cells = []
            for kind in KIND_NAMES:
                s = report.strata.get(kind, {}).get(scorer, {}).get(stratum)
                cells.append("n/a" if s is None else f"{_median(s)} (n {s.n})")
            rows.append([scorer, stratum, *cells])
    tables.append(("Per stratum of examples (median [95% CI])", rows))
    if report.controls:
        rows = [["control", "kind", *report.by_scorer]]
        for name, by_kind in report.controls.items():
            for kind, scorers in by_kind.items():
                rows.append(
                    [
                        name,
                        kind,
                        *(
                            f"{_median(scorers[sc])} (n {scorers[sc].n})" if sc in scorers else "n/a"
                            for sc in report.by_scorer
                        ),
                    ]
                )
        tables.append(("Controls (median [95% CI])", rows))
    if report.ceiling:
        rows = [["kind", "lookup ceiling", "explanation / ceiling"]]
        rows += [
            [kind, _median(sec.get("ceiling")), _median(sec.get("explanation_fraction"))]
            for kind, sec in report.ceiling.items()
        ]
        tables.append(("Token-lookup ceiling (simulation, median [95% CI])", rows))
    return tables


def validity_markdown(report: ComparisonReport) -> str:
    """Report.md's sections after the headline table."""
    if report.protocol_version is None:
        return ""
    lines = [f"## What the numbers mean (scoring protocol v{report.protocol_version})", ""]
    lines += [f"- **{name}**: {text}" for name, text in report.measures.items()]
    lines += ["", "## Conclusions", ""] + [f"- {line}" for line in report.conclusions]
    for title, rows in validity_tables(report):
        lines += ["", f"## {title}", "", "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows[1:]]
    coverage = {sc: v for sc, v in report.parse_coverage.items() if any(x is not None for x in v.values())}
    if coverage:
        lines += ["", "Mean parse coverage of the explanations by the simulator's language: " + "; ".join(
            f"{sc}: " + ", ".join(f"{k} {v:.2f}" for k, v in kinds.items() if v is not None) for sc, kinds in coverage.items()) + "."]  # fmt: skip
    lines += ["", f"![Scores against activation density]({DENSITY_PLOT})"]
    return "\n".join(lines) + "\n"
