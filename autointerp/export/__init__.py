"""Catalog exporters: JSONL, Neuronpedia-style JSON and a static HTML browser."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from autointerp.compare import ComparisonReport, compare, write_report
from autointerp.errors import UserError
from autointerp.export.html import add_unit, finish_html_catalog, plan_html_catalog, write_html_catalog
from autointerp.export.jsonl import CATALOG_JSONL, jsonl_line, read_jsonl, write_jsonl
from autointerp.export.neuronpedia import feature_record, read_neuronpedia, write_neuronpedia, write_neuronpedia_records
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
    full_entries: Callable[[], Iterable[CatalogEntry]] | None = None,
    report: ComparisonReport | None = None,
    scorer: str = "simulation",
    explainer: str | None = None,
    simulator: str | None = None,
    neuronpedia_model_id: str | None = None,
) -> dict[str, Path]:
    """Write every catalog format into out_dir; return {format: path}.

    Without a `report` the neurons-vs-features comparison is computed here; when it cannot be
    (no scores yet, only one kind of unit), the catalog is still written and its front page says why.
    Everything is written into a staging folder first and moved into place at the end, so a failure
    part way leaves the previous export whole instead of half old, half new.

    `entries` may be slim (without examples, see `autointerp.validity.slim_entry`) when
    `full_entries` streams the same units whole: every format is then written in one pass over the
    stream, one unit in memory at a time.
    """
    note = None
    if report is None:
        try:
            report = compare(entries, scorer=scorer, explainer=explainer, simulator=simulator)
        except UserError as exc:
            note = str(exc)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as tmp:
        staging, replaced = Path(tmp) / "new", Path(tmp) / "old"
        replaced.mkdir()
        staging.mkdir()
        plan = plan_html_catalog(entries, staging, report=report, scorer=scorer, explainer=explainer)
        jsonl = staging / CATALOG_JSONL

        def each_unit() -> Iterator[dict[str, Any]]:
            """Every unit once: its JSONL line written, its HTML record added, its Neuronpedia record handed on."""
            with jsonl.open("w", encoding="utf-8") as lines:
                for entry in (full_entries or (lambda: entries))():
                    lines.write(jsonl_line(entry))
                    add_unit(plan, entry)
                    yield feature_record(entry, model_id=neuronpedia_model_id)

        paths = {"neuronpedia": write_neuronpedia_records(each_unit(), staging), "jsonl": jsonl}
        if report is not None:
            paths["report"] = write_report(report, staging)
        paths["html"] = finish_html_catalog(plan, report, note)
        for item in sorted(staging.iterdir()):
            _move_into_place(item, out / item.name, replaced)
    return {name: out / path.relative_to(staging) for name, path in paths.items()}


def _move_into_place(new: Path, target: Path, replaced: Path) -> None:
    """Put `new` at `target`; an old folder there is first moved aside (os.replace cannot overwrite one)."""
    if target.is_dir() and not target.is_symlink():
        os.replace(target, replaced / target.name)
    os.replace(new, target)
