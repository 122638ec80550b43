"""Pieces every scorer shares: the settings hash of a score and the shape of a failed one."""

from __future__ import annotations

from typing import Any

from autointerp.records import ExampleScore, Explanation, Score, UnitHarvest
from autointerp.settings_hash import settings_hash
from autointerp.simulators.base import Simulator, Usage


def score_settings_hash(scorer: str, params: dict[str, Any], simulator: Simulator) -> str:
    """Changes whenever the scorer, its parameters, or anything about the simulator changes."""
    return settings_hash({"scorer": scorer, "params": params, "simulator": simulator.settings})


def balanced_accuracy(predicted: list[bool], actual: list[bool]) -> float | None:
    """Mean of the hit rates on the positive and the negative class; None if a class is empty."""
    positives = [p for p, a in zip(predicted, actual) if a]
    negatives = [p for p, a in zip(predicted, actual) if not a]
    if not positives or not negatives:
        return None
    return 0.5 * (sum(positives) / len(positives) + sum(not p for p in negatives) / len(negatives))


def failed_score(
    harvest: UnitHarvest,
    explanation: Explanation,
    scorer: str,
    simulator: Simulator,
    settings: str,
    error: str,
    usage: Usage | None = None,
    details: list[ExampleScore] | None = None,
) -> Score:
    usage = usage or Usage()
    return Score(
        unit_kind=harvest.kind,
        unit_index=harvest.index,
        explanation_settings_hash=explanation.settings_hash,
        scorer=scorer,
        simulator=simulator.name,
        value=None,
        failed=True,
        error=error,
        details=details or [],
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd,
        settings_hash=settings,
    )
