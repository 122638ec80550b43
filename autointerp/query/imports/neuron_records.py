"""OpenAI neuron-explainer NeuronRecord files, read as harvested units of a new source.

A NeuronRecord ({"neuron_id", "most_positive_activation_records", "random_sample", "mean", ...}, each
activation record {"tokens", "activations"}) holds what their explainer and simulator read. Imported,
the top records alternate between our explain and score splits (as their train and valid splits
interleave), and the random sample goes to the score split, so our scorers can score any explanation
of the neuron, theirs included, on their own text.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field, model_validator

from autointerp.records import ActivationExample, UnitHarvest, UnitKind, UnitStats


class ActivationRecord(BaseModel):
    tokens: list[str] = Field(min_length=1)
    activations: list[float]

    @model_validator(mode="after")
    def _one_value_per_token(self) -> ActivationRecord:
        if len(self.tokens) != len(self.activations):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.activations)} activations")
        return self


class NeuronId(BaseModel):
    layer_index: int
    neuron_index: int = Field(ge=0)


class NeuronRecord(BaseModel):
    neuron_id: NeuronId
    most_positive_activation_records: list[ActivationRecord] = Field(min_length=1)
    random_sample: list[ActivationRecord] = Field(default_factory=list)
    mean: float | None = None


def record_unit(record: NeuronRecord, kind: UnitKind, first_window: int) -> UnitHarvest:
    """The unit a NeuronRecord describes; its records become windows first_window, first_window + 1, ..."""
    placed = [("top", r) for r in record.most_positive_activation_records] + [
        ("random", r) for r in record.random_sample
    ]
    examples = [
        ActivationExample(
            window_id=first_window + n,
            tokens=r.tokens,
            activations=r.activations,
            split="explain" if sampling == "top" and n % 2 == 0 else "score",
            sampling=sampling,
        )
        for n, (sampling, r) in enumerate(placed)
    ]
    values = [v for _, r in placed for v in r.activations]
    active = [v for v in values if v > 0]
    mean = record.mean if record.mean is not None and math.isfinite(record.mean) else sum(values) / len(values)
    return UnitHarvest(
        kind=kind,
        index=record.neuron_id.neuron_index,
        stats=UnitStats(  # from the records alone: the top records make these higher than over all text
            tokens_seen=len(values),
            active_count=len(active),
            density=len(active) / len(values),
            max_activation=max(values),
            mean_activation=mean,
            mean_active_activation=sum(active) / len(active) if active else 0.0,
        ),
        examples=examples,
    )
