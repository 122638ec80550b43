"""Detection scoring: can a reader of the explanation tell activating excerpts from others?

Activating excerpts and non-activating ones (chosen by the protocol, see `examples`) are shuffled
together; the simulator says for each whether the unit fires anywhere in it. The value is the
balanced accuracy, so a simulator answering "yes" to everything scores 0.5, like one guessing. The
parts hold each class's hit rate and the share answered right within each stratum (top, quantile,
random, hard_negative, silent), so a reader sees whether the trigger's quiet contexts fool it.
"""

from __future__ import annotations

import random
from typing import ClassVar

from pydantic import Field

from autointerp.llm.errors import LLMCallError
from autointerp.records import ExampleScore, Explanation, Score, UnitHarvest
from autointerp.scoring.common import ScorerConfig, failed_score, judged_score, score_settings_hash
from autointerp.scoring.examples import (
    PROTOCOL_VERSION,
    ProtocolVersion,
    detection_examples,
)
from autointerp.simulators.base import Simulator, SimulatorError

SCORER_NAME = "detection"


class DetectionScorerConfig(ScorerConfig):
    scorer: ClassVar[str] = SCORER_NAME

    protocol: ProtocolVersion = PROTOCOL_VERSION
    activating_fraction: float = Field(0.1, ge=0, le=1)  # of the unit's max: the activating threshold
    max_per_class: int = Field(10, ge=1)
    seed: int = 0


async def score_detection(
    harvest: UnitHarvest,
    explanation: Explanation,
    simulator: Simulator,
    config: DetectionScorerConfig | None = None,
) -> Score:
    config = config or DetectionScorerConfig()
    settings = score_settings_hash(config, simulator)
    positives, negatives = detection_examples(
        harvest, config.activating_fraction, config.max_per_class, config.protocol
    )
    if not positives or not negatives:
        missing = "activating" if not positives else "non-activating"
        return failed_score(
            harvest, explanation, SCORER_NAME, simulator, settings, f"no {missing} examples in the score split"
        )
    labelled = [(e, True) for e in positives] + [(e, False) for e in negatives]
    random.Random(f"{config.seed}:{harvest.key}").shuffle(labelled)
    try:
        judgement = await simulator.detect(explanation.text, [e.tokens for e, _ in labelled])
    except (SimulatorError, LLMCallError) as exc:
        return failed_score(
            harvest, explanation, SCORER_NAME, simulator, settings, str(exc), getattr(exc, "usage", None)
        )
    answers = judgement.answers
    actual = [label for _, label in labelled]
    details = [
        ExampleScore(
            window_id=e.window_id, sampling=e.sampling, predicted=float(answer), actual=float(label),
            correct=answer == label,
        )
        for (e, label), answer in zip(labelled, answers)
    ]  # fmt: skip
    return judged_score(
        harvest, explanation, SCORER_NAME, simulator, settings, answers, actual, details, judgement.usage
    )
