"""Pieces every scorer shares: the settings hash of a score and the shape of a failed one."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from autointerp.records import ExampleScore, Explanation, Score, UnitHarvest
from autointerp.settings_hash import settings_hash
from autointerp.simulators.base import Simulator, Usage


class ScorerConfig(BaseModel):
    """A scorer's parameters; the class names its scorer, so the config alone fixes the hash."""

    scorer: ClassVar[str]


def score_settings_hash(config: ScorerConfig, simulator: Simulator) -> str:
    """The one place a score's settings hash is made, by the stage (to skip done work) and by the
    scorer (to stamp the score): it changes with the scorer, its parameters or the simulator."""
    return settings_hash({"scorer": config.scorer, "params": config.model_dump(), "simulator": simulator.settings})


def balanced_accuracy(predicted: list[bool], actual: list[bool]) -> float | None:
    """Mean of the hit rates on the positive and the negative class; None if a class is empty."""
    positives = [p for p, a in zip(predicted, actual) if a]
    negatives = [p for p, a in zip(predicted, actual) if not a]
    if not positives or not negatives:
        return None
    return 0.5 * (sum(positives) / len(positives) + sum(not p for p in negatives) / len(negatives))


def finished_score(
    harvest: UnitHarvest,
    explanation: Explanation,
    scorer: str,
    simulator: Simulator,
    settings: str,
    value: float | None,
    parts: dict[str, float | None],
    details: list[ExampleScore],
    usage: Usage,
) -> Score:
    """A score that was computed: its value, sub-scores, per-example details and what it cost.
    A simulator that reads a formal language also says how much of the explanation it understood."""
    coverage = getattr(simulator, "parse_coverage", None)
    if coverage is not None and explanation.text:
        parts = {**parts, "parse_coverage": coverage(explanation.text)}
    return Score(
        unit_kind=harvest.kind,
        unit_index=harvest.index,
        explanation_settings_hash=explanation.settings_hash,
        scorer=scorer,
        simulator=simulator.name,
        value=value,
        parts=parts,
        details=details,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd,
        settings_hash=settings,
    )


def judged_score(
    harvest: UnitHarvest,
    explanation: Explanation,
    scorer: str,
    simulator: Simulator,
    settings: str,
    answers: list[bool],
    actual: list[bool],
    details: list[ExampleScore],
    usage: Usage,
) -> Score:
    """Detection and fuzzing: balanced accuracy of yes/no answers, with each class's hit rate and
    the share answered right within each stratum of examples."""
    parts = {**class_hit_rates(answers, actual), **stratum_accuracy(details)}
    return finished_score(
        harvest, explanation, scorer, simulator, settings, balanced_accuracy(answers, actual), parts, details, usage,
    )  # fmt: skip


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
    score = finished_score(harvest, explanation, scorer, simulator, settings, None, {}, details or [], usage or Usage())
    return score.model_copy(update={"failed": True, "error": error})


def class_hit_rates(predicted: list[bool], actual: list[bool]) -> dict[str, float | None]:
    """Share answered right among the positive examples and among the negative ones."""
    pos = [p for p, a in zip(predicted, actual) if a]
    neg = [not p for p, a in zip(predicted, actual) if not a]
    return {
        "positive": sum(pos) / len(pos) if pos else None,
        "negative": sum(neg) / len(neg) if neg else None,
    }


def stratum_accuracy(details: list[ExampleScore]) -> dict[str, float | None]:
    """Share of examples answered right, per sampling stratum present."""
    out: dict[str, float | None] = {}
    for stratum in dict.fromkeys(d.sampling for d in details):
        right = [bool(d.correct) for d in details if d.sampling == stratum]
        out[stratum] = sum(right) / len(right)
    return out
