"""Neuronpedia export JSON, the reverse of autointerp/export/neuronpedia.py.

Reads either file our exporter writes (or Neuronpedia's own exports of the same shape): the flat
explanations list, [{"modelId", "layer", "index", "description", "explanationModelName", "typeName",
"scores": [...]}], or the feature list whose records nest their "explanations" that way; or the folder
holding them. A record's `layer` names the source and unit kind (see `layer_id_for`); with --source
and --kind given, every record is read as a unit of that source and kind instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from autointerp.errors import UserError
from autointerp.export.neuronpedia import EXPLANATIONS_JSON, NEURONPEDIA_DIR, layer_id_for
from autointerp.query.imports.labels import ImportedLabel, parse, read_json
from autointerp.records import UnitKind

TOOL = "neuronpedia"
FORMAT = "Neuronpedia export (a list of explanation or feature records)"


class NeuronpediaScore(BaseModel):
    value: float | None = None
    explanationScoreTypeName: str | None = None  # Neuronpedia's field names


class NeuronpediaExplanation(BaseModel):
    layer: str
    index: int = Field(ge=0)  # Neuronpedia writes it as a string of digits
    description: str
    explanationModelName: str | None = None
    typeName: str | None = None
    scores: list[NeuronpediaScore] = Field(default_factory=list)


def _records(path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The explanation records of a file or export folder (a feature list's nested ones flattened)."""
    if path.is_dir():
        folder = path / NEURONPEDIA_DIR if (path / NEURONPEDIA_DIR).is_dir() else path
        path = folder / EXPLANATIONS_JSON
    if not path.is_file():
        raise UserError(f"no Neuronpedia export at {path}")
    records = read_json(path)
    if not isinstance(records, list):
        raise UserError(f"{path} is not a {FORMAT}: it holds a JSON {type(records).__name__}")
    if records and all(isinstance(r, dict) and isinstance(r.get("explanations"), list) for r in records):
        records = [e for r in records for e in r["explanations"]]  # a feature list
    return path, records


def read_neuronpedia(
    path: Path, sources: list[str], source: str | None = None, kind: UnitKind | None = None
) -> Iterator[tuple[str, ImportedLabel]]:
    """(source, label) for each explanation in the export whose layer id is one of `sources`' (or all,
    as units of `source` and `kind` when both are given)."""
    file, records = _records(path)
    layers: dict[str, tuple[str, UnitKind]] = {
        layer_id_for(name, k): (name, k) for name in sources for k in ("neuron", "feature")
    }
    for n, data in enumerate(records):
        record = parse(NeuronpediaExplanation, data, file, f"{FORMAT} (record {n + 1})")
        if source is not None and kind is not None:
            target: tuple[str, UnitKind] | None = (source, kind)
        else:
            target = layers.get(record.layer)
        if target is None:
            continue
        scores = {s.explanationScoreTypeName: s.value for s in record.scores if s.explanationScoreTypeName}
        yield target[0], ImportedLabel(
            kind=target[1],
            index=record.index,
            text=record.description,
            meta={"file": file.name, "layer": record.layer, "model": record.explanationModelName,
                  "type": record.typeName, "their_scores": scores},
        )  # fmt: skip
