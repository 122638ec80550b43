"""Catalog exporters: JSONL, Neuronpedia-style JSON and a static HTML browser."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from autointerp.compare import ComparisonReport, compare, write_report
from autointerp.errors import UserError
from autointerp.export.html import write_html_catalog
from autointerp.export.jsonl import read_jsonl, write_jsonl
from autointerp.export.neuronpedia import read_neuronpedia, write_neuronpedia
from autointerp.records import CatalogEntry

__all__ = [
    "export_catalog",
    "read_jsonl",
    "read_neuronpedia",
    "write_html_catalog",
    "write_jsonl",
    "write_neuronpedia",
]


def export_catalog(
    entries: Sequence[CatalogEntry],
    out_dir: str | Path,
    *,
    report: ComparisonReport | None = None,
    scorer: str = "simulation",
    explainer: str | None = None,
    simulator: str | None = None,
    neuronpedia_model_id: str | None = None,
) -> dict[str, Path]:
    """Write every catalog format into out_dir; return {format: path}.

    Without a `report` the neurons-vs-features comparison is computed here; when it cannot be
    (no scores yet, only one kind of unit), the catalog is still written and its front page says why.
    """
    note = None
    if report is None:
        try:
            report = compare(entries, scorer=scorer, explainer=explainer, simulator=simulator)
        except UserError as exc:
            note = str(exc)
    paths = {
        "jsonl": write_jsonl(entries, out_dir),
        "neuronpedia": write_neuronpedia(entries, out_dir, model_id=neuronpedia_model_id),
    }
    if report is not None:
        paths["report"] = write_report(report, out_dir)
    paths["html"] = write_html_catalog(
        entries, out_dir, report=report, comparison_note=note, scorer=scorer, explainer=explainer
    )
    return paths
