"""Neuronpedia-style JSON, so our labels and activations can be shared with and loaded by its tools.

Field names follow Neuronpedia's feature, explanation and activation records (modelId, layer,
index, description, explanationModelName, typeName, tokens/values/maxValue, pos_str/pos_values, ...).
Neuronpedia names a "source" (our hook + SAE, or the raw neurons) by a `layer` id such as
`0-res-jb`; we derive one per (source, kind) so neurons and features never share an id.

Written into out_dir/neuronpedia/:
- features.json: one object per unit with its explanations and top activations nested
  (the shape of Neuronpedia's feature records);
- explanations.json: every explanation flat, with its scores (the shape of their explanation export).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from autointerp.errors import UserError
from autointerp.export.selection import finite_or_none, json_safe, top_examples
from autointerp.records import ActivationExample, CatalogEntry, Explanation, UnitKind

NEURONPEDIA_DIR = "neuronpedia"
FEATURES_JSON = "features.json"
EXPLANATIONS_JSON = "explanations.json"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "source"


def model_id_for(source: str) -> str:
    """The subject model part of a source name: everything before the first '/'."""
    return _slug(source.split("/", 1)[0])


def layer_id_for(source: str, kind: UnitKind) -> str:
    """A Neuronpedia-style source id, e.g. 'blocks-0-mlp-act-sae-64-features'."""
    rest = source.split("/", 1)[1] if "/" in source else source
    return f"{_slug(rest)}-{'neurons' if kind == 'neuron' else 'features'}"


def _explanation_record(explanation: Explanation, entry: CatalogEntry, model_id: str, layer: str) -> dict[str, Any]:
    scores = [
        {
            "value": finite_or_none(score.value),
            "explanationScoreTypeName": score.scorer,
            "explanationScoreModelName": score.simulator,
        }
        for score in entry.scores
        if score.explanation_settings_hash == explanation.settings_hash
        and not score.failed
        and finite_or_none(score.value) is not None
    ]
    return {
        "modelId": model_id,
        "layer": layer,
        "index": str(entry.harvest.index),
        "description": explanation.text,
        "explanationModelName": explanation.model or explanation.explainer,
        "typeName": explanation.explainer,
        "promptVersion": explanation.prompt_version,
        "scores": scores,
    }


def _activation_record(example: ActivationExample, model_id: str, layer: str, index: int) -> dict[str, Any]:
    values = example.activations
    max_at = max(range(len(values)), key=values.__getitem__) if values else 0
    return {
        "modelId": model_id,
        "layer": layer,
        "index": str(index),
        "tokens": example.tokens,
        "values": values,
        "maxValue": max(values) if values else 0.0,
        "maxValueTokenIndex": max_at,
        "minValue": min(values) if values else 0.0,
    }


def _histogram_bars(edges: list[float], counts: list[int]) -> tuple[list[float], list[int]]:
    """Bar positions (bin midpoints) and heights, as Neuronpedia's freq_hist_data_* fields."""
    if len(edges) != len(counts) + 1:
        return [], []
    return [(lo + hi) / 2 for lo, hi in itertools.pairwise(edges)], list(counts)


def feature_record(
    entry: CatalogEntry, *, model_id: str | None = None, layer: str | None = None, max_activations: int = 20
) -> dict[str, Any]:
    """One unit as a Neuronpedia-style feature object, explanations and activations nested."""
    harvest = entry.harvest
    model_id = model_id or model_id_for(entry.source)
    layer = layer or layer_id_for(entry.source, harvest.kind)
    bar_values, bar_heights = _histogram_bars(harvest.stats.histogram_edges, harvest.stats.histogram_counts)
    record = {
        "modelId": model_id,
        "layer": layer,
        "index": str(harvest.index),
        "unitKind": harvest.kind,
        "sourceName": entry.source,
        "maxActApprox": harvest.stats.max_activation,
        "frac_nonzero": harvest.stats.density,
        "pos_str": [t.token for t in harvest.promoted_tokens],
        "pos_values": [t.weight for t in harvest.promoted_tokens],
        "neg_str": [t.token for t in harvest.suppressed_tokens],
        "neg_values": [t.weight for t in harvest.suppressed_tokens],
        "freq_hist_data_bar_values": bar_values,
        "freq_hist_data_bar_heights": bar_heights,
        "neuron_alignment_indices": [n.neuron for n in harvest.top_neurons],
        "neuron_alignment_values": [n.weight for n in harvest.top_neurons],
        "explanations": [_explanation_record(e, entry, model_id, layer) for e in entry.explanations],
        "activations": [
            _activation_record(example, model_id, layer, harvest.index)
            for example in top_examples(harvest, max_activations)
        ],
    }
    return json_safe(record)


def write_neuronpedia(
    entries: Iterable[CatalogEntry],
    out_dir: str | Path,
    *,
    model_id: str | None = None,
    max_activations: int = 20,
) -> Path:
    """Write out_dir/neuronpedia/{features,explanations}.json; return the folder.

    `model_id` overrides the Neuronpedia model id derived from each source name (use the id the
    subject model has on Neuronpedia, e.g. 'gpt2-small', when sharing there).
    """
    features = [feature_record(e, model_id=model_id, max_activations=max_activations) for e in entries]
    return write_neuronpedia_records(features, out_dir)


def write_neuronpedia_records(features: Iterable[dict[str, Any]], out_dir: str | Path) -> Path:
    """Write feature records (from `feature_record`) as out_dir/neuronpedia/{features,explanations}.json,
    one record in memory at a time."""
    folder = Path(out_dir) / NEURONPEDIA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    keys: set[tuple[Any, Any, Any]] = set()
    explanations: list[dict[str, Any]] = []
    with (folder / FEATURES_JSON).open("w", encoding="utf-8") as out:
        out.write("[")
        for n, feature in enumerate(features):
            key = (feature["modelId"], feature["layer"], feature["index"])
            if key in keys:
                raise UserError(
                    "Two catalog entries map to the same Neuronpedia (modelId, layer, index); pass distinct sources."
                )
            keys.add(key)
            explanations.extend(feature["explanations"])
            out.write((", " if n else "") + json.dumps(feature, allow_nan=False))
        out.write("]")
    (folder / EXPLANATIONS_JSON).write_text(json.dumps(explanations, allow_nan=False, indent=1), encoding="utf-8")
    return folder


def read_neuronpedia(folder: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Read a folder written by `write_neuronpedia`: {"features": [...], "explanations": [...]}."""
    folder = Path(folder)
    if (folder / NEURONPEDIA_DIR).is_dir():
        folder = folder / NEURONPEDIA_DIR
    result = {}
    for key, name in (("features", FEATURES_JSON), ("explanations", EXPLANATIONS_JSON)):
        path = folder / name
        if not path.is_file():
            raise UserError(f"No Neuronpedia export at {path}.")
        try:
            result[key] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is not valid JSON: {exc}") from exc
    return result
