"""Plain records for what the harvest produces about one unit (a raw MLP neuron or an SAE feature).

They live in `sae` because the harvest writes them; `autointerp` reuses them as they are and adds
explanations and scores on top. Everything is JSON-serialisable through pydantic.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

UnitKind = Literal["neuron", "feature"]
# Which half of the harvested windows an example comes from. Explainers only ever see "explain";
# simulators and scorers only ever see "score". A window belongs to exactly one split.
ExampleSplit = Literal["explain", "score"]
# How the example was chosen: the top-k by max activation, a stratified sample per activation
# quantile, a uniformly random window, a window where the unit is silent ("silent": random among
# the windows where it never fires; for units that fire nearly everywhere, the least active windows),
# or a hard negative: a window holding one of the unit's strongest trigger tokens where it stays quiet.
Sampling = Literal["top", "quantile", "random", "silent", "hard_negative"]


def unit_key(kind: UnitKind, index: int) -> str:
    """The stable name of a unit inside one source, e.g. ``feature:17``."""
    return f"{kind}:{index}"


class ActivationExample(BaseModel):
    """One window of tokens with the unit's activation at every token."""

    window_id: int  # position of the window in the harvested stream; unique within a harvest
    start: int = 0  # position of tokens[0] within that window (examples may be a slice of it)
    tokens: list[str]  # decoded token strings, one per position (whitespace kept)
    activations: list[float]  # same length as tokens
    split: ExampleSplit
    sampling: Sampling
    quantile: int | None = None  # for sampling == "quantile": 0 is the lowest band

    @property
    def max_activation(self) -> float:
        return max(self.activations) if self.activations else 0.0


class UnitStats(BaseModel):
    """Summary of a unit's activations over every harvested token."""

    tokens_seen: int
    active_count: int  # tokens with activation > 0
    density: float  # active_count / tokens_seen
    max_activation: float
    mean_activation: float  # over all tokens, zeros included
    mean_active_activation: float  # over active tokens only
    # log10-spaced histogram of the positive activations: len(edges) == len(counts) + 1
    histogram_edges: list[float] = Field(default_factory=list)
    histogram_counts: list[int] = Field(default_factory=list)


class TokenWeight(BaseModel):
    """A vocabulary token and how strongly a feature pushes its logit (through the unembedding)."""

    token: str
    weight: float


class NeuronWeight(BaseModel):
    """An MLP neuron and its weight in a feature's decoder direction."""

    neuron: int
    weight: float


class UnitHarvest(BaseModel):
    """Everything the explain and score stages need to know about one unit."""

    kind: UnitKind
    index: int
    stats: UnitStats
    examples: list[ActivationExample] = Field(default_factory=list)
    promoted_tokens: list[TokenWeight] = Field(default_factory=list)
    suppressed_tokens: list[TokenWeight] = Field(default_factory=list)
    top_neurons: list[NeuronWeight] = Field(default_factory=list)  # features only

    @property
    def key(self) -> str:
        return unit_key(self.kind, self.index)

    def examples_for(self, split: ExampleSplit, *samplings: Sampling) -> list[ActivationExample]:
        """The examples of one split, optionally only those of the given samplings."""
        return [e for e in self.examples if e.split == split and (not samplings or e.sampling in samplings)]
