"""What every importer hands over, and how it is written into the store."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from autointerp.errors import UserError, describe_validation_error
from autointerp.records import Explanation, UnitKind
from autointerp.settings_hash import settings_hash
from autointerp.store import CatalogStore

IMPORTED_PREFIX = "imported:"
Model = TypeVar("Model", bound=BaseModel)


class ImportedLabel(BaseModel):
    """One explanation of one unit, read from another tool's file."""

    kind: UnitKind
    index: int
    text: str
    meta: dict[str, Any] = Field(default_factory=dict)  # e.g. the tool's own score, the file it came from


class ImportReport(BaseModel):
    source: str
    explainer: str
    imported: int
    units: int = 0  # units created from the file (neuron-explainer NeuronRecords)
    not_in_catalog: list[str]  # unit keys the file labels that this source has no unit for


def imported_explainer(tool: str) -> str:
    """The explainer name imported labels are stored (and scored) under, e.g. 'imported:delphi'."""
    return f"{IMPORTED_PREFIX}{tool}"


def imported_settings_hash(explainer: str) -> str:
    """The settings hash of an imported explainer: one imported explanation per unit and tool, which
    `autointerp score --explainer imported:TOOL` finds by this hash."""
    return settings_hash({"explainer": explainer})


def store_labels(store: CatalogStore, source: str, tool: str, labels: Iterable[ImportedLabel]) -> ImportReport:
    """Write the labels of units this source has as explanations (a unit labelled twice keeps the
    first); report the units it lacks. Raises UserError when no label fits a unit of the source."""
    explainer = imported_explainer(tool)
    known = set(store.unit_keys(source))
    chosen: dict[tuple[str, int], ImportedLabel] = {}
    missing: list[str] = []
    for label in labels:
        key = (label.kind, label.index)
        if key not in known:
            missing.append(f"{label.kind}:{label.index}")
        elif key not in chosen and label.text.strip():
            chosen[key] = label
    if not chosen:
        raise UserError(
            f"none of the {len(missing)} units labelled in the file is a unit of source {source!r} "
            f"(first: {', '.join(missing[:3]) or 'none'}); pick the matching --source / --kind"
        )
    digest = imported_settings_hash(explainer)
    store.put_explanations(
        source,
        [
            Explanation(
                unit_kind=label.kind,
                unit_index=label.index,
                text=label.text.strip(),
                explainer=explainer,
                settings_hash=digest,
                meta=label.meta,
            )
            for label in chosen.values()
        ],
    )
    return ImportReport(source=source, explainer=explainer, imported=len(chosen), not_in_catalog=missing)


def read_json(path: Path, *, lines: bool = False) -> Any:
    """A JSON file (or, with `lines`, a JSON Lines file as a list), with one clear error if it is not."""
    try:
        text = path.read_text(encoding="utf-8")
        if lines:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is not valid JSON{' Lines' if lines else ''}: {err}") from None


def parse(model: type[Model], data: Any, path: Path, what: str) -> Model:
    """`data` read as `model`, or one UserError naming the file and the format it should have."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise UserError(f"{path} is not a {what}: {describe_validation_error(err)}") from None
