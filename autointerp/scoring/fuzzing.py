"""Fuzzing scoring: are the highlighted tokens the ones the explanation says the unit fires on?

Each activating excerpt appears twice: once with its truly active tokens highlighted, once with the
same number of highlights on random tokens where the unit is quiet. The simulator judges each; the
value is the balanced accuracy over right and wrong highlightings. Unlike detection, this checks
that the explanation points at the right tokens, not just at the right kind of text.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, Field

from autointerp.llm.errors import LLMCallError
from autointerp.records import ExampleScore, Explanation, Score, UnitHarvest
from autointerp.scoring.common import failed_score, judged_score, score_settings_hash
from autointerp.scoring.examples import activating_examples, score_split_max
from autointerp.simulators.base import HighlightedExample, Simulator, SimulatorError

SCORER_NAME = "fuzzing"


class FuzzingScorerConfig(BaseModel):
    activating_fraction: float = Field(0.1, ge=0, le=1)  # of the unit's max: which tokens are "active"
    max_examples: int = Field(10, ge=1)  # activating excerpts used (each appears twice)
    seed: int = 0


async def score_fuzzing(
    harvest: UnitHarvest,
    explanation: Explanation,
    simulator: Simulator,
    config: FuzzingScorerConfig | None = None,
) -> Score:
    config = config or FuzzingScorerConfig()
    settings = score_settings_hash(SCORER_NAME, config.model_dump(), simulator)
    threshold = config.activating_fraction * score_split_max(harvest)
    rng = random.Random(f"{config.seed}:{harvest.key}")
    items: list[tuple[int, str, HighlightedExample, bool]] = []  # window, sampling, example, right marks?
    for example in activating_examples(harvest, config.activating_fraction)[: config.max_examples]:
        active = [i for i, a in enumerate(example.activations) if a > 0 and a >= threshold]
        quiet = [i for i, a in enumerate(example.activations) if not (a > 0 and a >= threshold)]
        items.append((example.window_id, example.sampling, HighlightedExample(tokens=example.tokens, highlighted=active), True))
        if len(quiet) >= len(active):
            decoys = sorted(rng.sample(quiet, len(active)))
            items.append((example.window_id, example.sampling, HighlightedExample(tokens=example.tokens, highlighted=decoys), False))
    if not any(right for *_, right in items) or all(right for *_, right in items):
        return failed_score(harvest, explanation, SCORER_NAME, simulator, settings, "not enough activating examples in the score split")
    rng.shuffle(items)
    try:
        judgement = await simulator.fuzz(explanation.text, [example for _, _, example, _ in items])
    except (SimulatorError, LLMCallError) as exc:
        return failed_score(harvest, explanation, SCORER_NAME, simulator, settings, str(exc), getattr(exc, "usage", None))
    answers = judgement.answers
    actual = [right for *_, right in items]
    details = [
        ExampleScore(
            window_id=window_id, sampling=sampling, predicted=float(answer), actual=float(right),
            correct=answer == right,
        )
        for (window_id, sampling, _, right), answer in zip(items, answers)
    ]  # fmt: skip
    return judged_score(harvest, explanation, SCORER_NAME, simulator, settings, answers, actual, details, judgement.usage)
