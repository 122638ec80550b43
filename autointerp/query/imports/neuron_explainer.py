"""OpenAI neuron-explainer (openai/automated-interpretability) explanation and NeuronRecord files.

Their explanations are stored one file per neuron, `{layer}/{neuron}.jsonl`, holding one JSON line: a
NeuronSimulationResults, {"neuron_id": {"layer_index", "neuron_index"}, "scored_explanations":
[{"explanation", "scored_simulation": {"ev_correlation_score", ...}}, ...]} (their dataclasses also
write a "dataclass_name" key, which is not needed here). A file may hold several such lines; a folder
is read file by file. The first explanation of a neuron is imported, with its ev-correlation score as `their_score`.
NeuronRecord files (their `neurons/{layer}/{neuron}.json`) beside them become units: neuron_records.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from autointerp.errors import UserError
from autointerp.query.imports.labels import ImportedLabel, parse, read_json
from autointerp.query.imports.neuron_records import NeuronId, NeuronRecord, record_unit
from autointerp.records import UnitHarvest, UnitKind

TOOL = "neuron-explainer"
FORMAT = "neuron-explainer NeuronSimulationResults record"


class ScoredSimulation(BaseModel):
    ev_correlation_score: float | None = None


class ScoredExplanation(BaseModel):
    explanation: str
    scored_simulation: ScoredSimulation | None = None


class NeuronSimulationResults(BaseModel):
    neuron_id: NeuronId
    scored_explanations: list[ScoredExplanation] = Field(min_length=1)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl") and p.is_file())
        if not files:
            raise UserError(f"{path} holds no .json or .jsonl neuron-explainer files")
        return files
    if not path.is_file():
        raise UserError(f"no neuron-explainer file or folder at {path}")
    return [path]


def _objects(file: Path) -> list[Any]:
    """The JSON objects of a file: one JSON value (a list is its items), or JSON Lines."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return read_json(file, lines=True)
    except UnicodeDecodeError as err:
        raise UserError(f"{file} is not a text file: {err}") from None
    return data if isinstance(data, list) else [data]


class NeuronFiles(BaseModel):
    """What a folder (or file) of neuron-explainer output holds for one layer."""

    units: list[UnitHarvest] = Field(default_factory=list)  # from NeuronRecords
    labels: list[ImportedLabel] = Field(default_factory=list)  # from NeuronSimulationResults


def read_neuron_explainer(path: Path, kind: UnitKind = "neuron", layer: int | None = None) -> NeuronFiles:
    """The NeuronRecords and explanations in `path` (a file or a folder of them), as units and labels
    of `kind`. Files of several layers need `layer` to say which one to read."""
    found = NeuronFiles()
    layers: set[int] = set()
    for file in _files(path):
        for n, data in enumerate(_objects(file)):
            where = f"(object {n + 1})"
            parsed: NeuronRecord | NeuronSimulationResults
            if isinstance(data, dict) and "most_positive_activation_records" in data:
                parsed = parse(NeuronRecord, data, file, f"neuron-explainer NeuronRecord {where}")
            else:
                parsed = parse(NeuronSimulationResults, data, file, f"{FORMAT} {where}")
            neuron = parsed.neuron_id
            if layer is not None and neuron.layer_index != layer:
                continue
            layers.add(neuron.layer_index)
            if len(layers) > 1:
                raise UserError(
                    f"{path} holds neurons of layers {sorted(layers)}; pick the layer of this catalog's units with --layer"
                )
            if isinstance(parsed, NeuronRecord):
                windows = sum(len(u.examples) for u in found.units)
                found.units.append(record_unit(parsed, kind, first_window=windows))
                continue
            first = parsed.scored_explanations[0]
            score = first.scored_simulation.ev_correlation_score if first.scored_simulation else None
            found.labels.append(
                ImportedLabel(
                    kind=kind,
                    index=neuron.neuron_index,
                    text=first.explanation,
                    meta={"file": file.name, "layer": neuron.layer_index, "their_score": score},
                )
            )
    return found
