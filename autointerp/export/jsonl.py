"""catalog.jsonl: one JSON object per unit, for tools that stream a catalog line by line.

Each line carries the unit's identity, stats, every explanation, every score (without per-example
details, which stay in the store) and its top examples as tokens + activations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from autointerp.errors import UserError
from autointerp.export.selection import json_safe, top_examples
from autointerp.records import CatalogEntry

CATALOG_JSONL = "catalog.jsonl"


def unit_record(entry: CatalogEntry, *, max_examples: int = 10) -> dict[str, Any]:
    """The JSON object written for one unit."""
    harvest = entry.harvest
    record = {
        "source": entry.source,
        "kind": harvest.kind,
        "index": harvest.index,
        "key": harvest.key,
        "stats": harvest.stats.model_dump(),
        "explanations": [e.model_dump(exclude={"raw_response"}) for e in entry.explanations],
        "scores": [s.model_dump(exclude={"details"}) for s in entry.scores],
        "top_examples": [
            {
                "window_id": e.window_id,
                "split": e.split,
                "tokens": e.tokens,
                "activations": e.activations,
                "max_activation": e.max_activation,
            }
            for e in top_examples(harvest, max_examples)
        ],
        "promoted_tokens": [t.model_dump() for t in harvest.promoted_tokens],
        "suppressed_tokens": [t.model_dump() for t in harvest.suppressed_tokens],
        "top_neurons": [n.model_dump() for n in harvest.top_neurons],
    }
    if entry.extra:
        record["extra"] = entry.extra
    return json_safe(record)


def write_jsonl(entries: Iterable[CatalogEntry], out_dir: str | Path, *, max_examples: int = 10) -> Path:
    """Write out_dir/catalog.jsonl (ASCII-escaped JSON, one unit per line) and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / CATALOG_JSONL
    with path.open("w", encoding="utf-8") as f:
        for entry in entries:
            f.write(jsonl_line(entry, max_examples=max_examples))
    return path


def jsonl_line(entry: CatalogEntry, *, max_examples: int = 10) -> str:
    """One unit as a line of catalog.jsonl."""
    return json.dumps(unit_record(entry, max_examples=max_examples), allow_nan=False) + "\n"


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a catalog.jsonl back (a directory means its catalog.jsonl)."""
    path = Path(path)
    if path.is_dir():
        path = path / CATALOG_JSONL
    if not path.is_file():
        raise UserError(f"No catalog JSONL at {path}.")
    records = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{line_no} is not valid JSON: {exc}") from exc
    return records
