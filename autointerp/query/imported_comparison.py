"""The report's comparison of imported explanations (`autointerp import`) with our own, unit by unit.

For every imported explainer, on the units where both its explanation and ours have a valid score
from the report's scorer and simulator: how many such units, both medians, the median of the paired
differences (imported - ours) and the fraction of units where the imported one scores higher.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from autointerp.compare import ComparisonReport, explanation_label, latest_explanation, score_of, valid_value
from autointerp.labeling import is_usable
from autointerp.query.imports.labels import IMPORTED_PREFIX
from autointerp.records import CatalogEntry

Pairs = dict[str, dict[str, list[tuple[float, float]]]]  # imported explainer -> kind -> (ours, imported)


def paired_scores(entries: Sequence[CatalogEntry], report: ComparisonReport) -> Pairs:
    pairs: Pairs = defaultdict(lambda: defaultdict(list))
    for entry in entries:
        ours = latest_explanation(entry, report.explainer)
        if ours is None:
            continue
        our_value = valid_value(score_of(entry, ours, report.scorer, report.simulator))
        for explanation in entry.explanations:
            if not (explanation.explainer.startswith(IMPORTED_PREFIX) and is_usable(explanation)):
                continue
            if explanation_label(explanation) == report.explainer or our_value is None:
                continue
            theirs = valid_value(score_of(entry, explanation, report.scorer, report.simulator))
            if theirs is not None:
                pairs[explanation.explainer][entry.harvest.kind].append((our_value, theirs))
    return pairs


def add_imported_comparison(report: ComparisonReport, entries: Sequence[CatalogEntry]) -> ComparisonReport:
    """The report with its `imported` section filled (empty when nothing imported was scored)."""
    section = {
        name: {
            kind: {
                "units": float(len(rows)),
                "ours_median": float(np.median([o for o, _ in rows])),
                "imported_median": float(np.median([t for _, t in rows])),
                "median_difference": float(np.median([t - o for o, t in rows])),
                "imported_higher": float(np.mean([t > o for o, t in rows])),
            }
            for kind, rows in sorted(by_kind.items())
        }
        for name, by_kind in sorted(paired_scores(entries, report).items())
    }
    return report.model_copy(update={"imported": section})


def imported_markdown(report: ComparisonReport) -> str:
    """Report.md's table of imported vs our explanations ("" when there is none)."""
    if not report.imported:
        return ""
    lines = [
        f"## Imported explanations vs ours (`{report.scorer}`, same units)",
        "",
        "| imported from | kind | units | ours (median) | imported (median) | median difference | imported higher |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, by_kind in report.imported.items():
        for kind, row in by_kind.items():
            lines.append(
                f"| {name} | {kind} | {row['units']:.0f} | {row['ours_median']:.3f} | {row['imported_median']:.3f} "
                f"| {row['median_difference']:+.3f} | {row['imported_higher']:.0%} |"
            )
    return "\n".join(lines) + "\n"
