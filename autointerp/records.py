"""Records shared by the store, the explainers, the scorers and the exporters.

The harvest records (examples, stats, promoted tokens) come from `sae.records` unchanged; this module
adds what the later stages write about a unit: explanations and scores.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from sae.records import (  # noqa: F401  (re-exported: one import site for the whole package)
    ActivationExample,
    ExampleSplit,
    NeuronWeight,
    Sampling,
    TokenWeight,
    UnitHarvest,
    UnitKind,
    UnitStats,
    unit_key,
)


class Explanation(BaseModel):
    """One description of one unit, with enough provenance to reproduce or price it."""

    unit_kind: UnitKind
    unit_index: int
    text: str
    explainer: str  # e.g. "offline-ngram" or "llm"
    model: str | None = None  # e.g. "openai:gpt-4o-mini"; None for offline explainers
    prompt_version: str | None = None  # file name + version of the prompt template used
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    raw_response: str | None = None
    settings_hash: str = ""  # hash of every setting that changes the output; used to skip done work
    # An explainer that gave no usable text (LLM call failed, reply unreadable) is recorded, not lost:
    # text is then "" and error says why. Failed explanations are retried by the next run, never scored.
    failed: bool = False
    error: str | None = None
    # What the explainer reports about its own work, e.g. the offline explainer's
    # {"budget_words": 40, "binding": true, "candidates": 17, "named": 9} or a control's {"from_unit": 12}.
    meta: dict[str, Any] = Field(default_factory=dict)


class ExampleScore(BaseModel):
    """What a scorer saw and predicted for one held-out example."""

    window_id: int
    sampling: Sampling
    predicted: list[float] | float  # per-token predictions (simulation) or one value (detection)
    actual: list[float] | float
    correct: bool | None = None  # for detection / fuzzing


class Score(BaseModel):
    """How well one explanation predicts its unit under one scorer."""

    unit_kind: UnitKind
    unit_index: int
    explanation_settings_hash: str  # which explanation this scores (see Explanation.settings_hash)
    scorer: str  # "simulation", "detection", "fuzzing"
    simulator: str  # e.g. "offline" or "openai:gpt-4o-mini"
    value: float | None  # None when the score failed
    failed: bool = False
    error: str | None = None
    # Sub-scores, e.g. {"top": 0.8, "random": 0.3, "all": 0.7} for simulation.
    parts: dict[str, float | None] = Field(default_factory=dict)
    details: list[ExampleScore] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    settings_hash: str = ""


class CatalogEntry(BaseModel):
    """Everything known about one unit: what the exporters and the HTML catalog render."""

    source: str  # which model/hook/SAE this unit belongs to, e.g. "builtin/blocks.0.mlp.act/sae-4096"
    harvest: UnitHarvest
    explanations: list[Explanation] = Field(default_factory=list)
    scores: list[Score] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


class UnitLink(BaseModel):
    """A feature of one SAE and its nearest feature in a smaller SAE on the same hook (feature splitting).

    `relation` says which measure chose the parent: the largest decoder cosine, or the largest activation
    correlation on the same tokens; both measures are given for the pair either way."""

    child_source: str
    child_index: int
    parent_source: str
    parent_index: int
    parent_size: int  # features in the parent's SAE: the parents no child chose are counted from it
    relation: Literal["cosine", "correlation"]
    decoder_cosine: float
    activation_correlation: float | None  # None where a unit never varied on the tokens
