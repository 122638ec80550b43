"""OpenAI neuron-explainer (openai/automated-interpretability) explanation files.

Their explanations are stored one file per neuron, `{layer}/{neuron}.jsonl`, holding one JSON line: a
NeuronSimulationResults, {"neuron_id": {"layer_index", "neuron_index"}, "scored_explanations":
[{"explanation", "scored_simulation": {"ev_correlation_score", ...}}, ...]} (their dataclasses also
write a "dataclass_name" key, which is not needed here). A file may hold several such lines; a folder
is read file by file. The first explanation of a neuron is imported, with its ev-correlation score.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, Field

from autointerp.errors import UserError
from autointerp.query.imports.labels import ImportedLabel, parse, read_json
from autointerp.records import UnitKind

TOOL = "neuron-explainer"
FORMAT = "neuron-explainer NeuronSimulationResults record"


class NeuronId(BaseModel):
    layer_index: int
    neuron_index: int = Field(ge=0)


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


def read_neuron_explainer(path: Path, kind: UnitKind = "neuron", layer: int | None = None) -> Iterator[ImportedLabel]:
    """The explanations in `path` (a file or a folder of them) as labels of units of `kind`. Records
    of several layers need `layer` to say which one this catalog's units are."""
    layers: set[int] = set()
    for file in _files(path):
        for n, data in enumerate(read_json(file, lines=True)):
            record = parse(NeuronSimulationResults, data, file, f"{FORMAT} (line {n + 1})")
            neuron = record.neuron_id
            if layer is not None and neuron.layer_index != layer:
                continue
            layers.add(neuron.layer_index)
            if len(layers) > 1:
                raise UserError(
                    f"{path} holds neurons of layers {sorted(layers)}; pick the layer of this catalog's units with --layer"
                )
            first = record.scored_explanations[0]
            score = first.scored_simulation.ev_correlation_score if first.scored_simulation else None
            yield ImportedLabel(
                kind=kind,
                index=neuron.neuron_index,
                text=first.explanation,
                meta={"file": file.name, "layer": neuron.layer_index, "their_score": score,
                      "their_scorer": "ev_correlation_score"},
            )  # fmt: skip
