"""Fuzzing scoring: are the highlighted tokens the ones the explanation says the unit fires on?

Protocol 2 (default): in each activating excerpt (the detection positives) the `highlights` most
active tokens are marked once ("right"), and as many quiet tokens of the same excerpt once
("wrong"), so every window of every unit carries the same number of marks and a dense unit's
excerpts are not easier to judge. Harder wrong marks come from the other strata: in each hard
negative the token that triggers the unit elsewhere (a peak token of its top windows) is marked
where the unit stays quiet, and in quiet random windows a random token is marked. Protocol 1 marks
every active token (and as many random quiet decoys) in activating excerpts only.

The simulator judges each marking; the value is the balanced accuracy over right and wrong ones,
with the share answered right per stratum in the parts. Unlike detection, this checks that the
explanation points at the right tokens, not just at the right kind of text.
"""

from __future__ import annotations

import random
from typing import ClassVar

from pydantic import Field

from autointerp.llm.errors import LLMCallError
from autointerp.records import (
    ActivationExample,
    ExampleScore,
    Explanation,
    Score,
    UnitHarvest,
)
from autointerp.scoring.common import ScorerConfig, failed_score, judged_score, score_settings_hash
from autointerp.scoring.examples import (
    PROTOCOL_VERSION,
    ProtocolVersion,
    activating_examples,
    detection_examples,
    is_activating,
    score_split_max,
)
from autointerp.simulators.base import HighlightedExample, Simulator, SimulatorError

SCORER_NAME = "fuzzing"


class FuzzingScorerConfig(ScorerConfig):
    scorer: ClassVar[str] = SCORER_NAME

    protocol: ProtocolVersion = PROTOCOL_VERSION
    activating_fraction: float = Field(0.1, ge=0, le=1)  # of the unit's max: which tokens are "active"
    max_examples: int = Field(10, ge=1)  # activating excerpts used (each appears twice)
    highlights: int = Field(1, ge=1)  # protocol 2: marks per excerpt, the same for every unit
    seed: int = 0


# (window id, stratum, excerpt with marks, are the marks right?)
Item = tuple[int, str, HighlightedExample, bool]


async def score_fuzzing(
    harvest: UnitHarvest,
    explanation: Explanation,
    simulator: Simulator,
    config: FuzzingScorerConfig | None = None,
) -> Score:
    config = config or FuzzingScorerConfig()
    settings = score_settings_hash(config, simulator)
    rng = random.Random(f"{config.seed}:{harvest.key}")
    items = _items_v1(harvest, config, rng) if config.protocol == 1 else _items_v2(harvest, config, rng)
    if not any(right for *_, right in items) or all(right for *_, right in items):
        return failed_score(
            harvest, explanation, SCORER_NAME, simulator, settings, "not enough activating examples in the score split"
        )
    rng.shuffle(items)
    try:
        judgement = await simulator.fuzz(explanation.text, [example for _, _, example, _ in items])
    except (SimulatorError, LLMCallError) as exc:
        return failed_score(
            harvest, explanation, SCORER_NAME, simulator, settings, str(exc), getattr(exc, "usage", None)
        )
    answers = judgement.answers
    actual = [right for *_, right in items]
    details = [
        ExampleScore(
            window_id=window_id, sampling=sampling, predicted=float(answer), actual=float(right),  # type: ignore[arg-type]
            correct=answer == right,
        )
        for (window_id, sampling, _, right), answer in zip(items, answers)
    ]  # fmt: skip
    return judged_score(
        harvest, explanation, SCORER_NAME, simulator, settings, answers, actual, details, judgement.usage
    )


def _marked(example: ActivationExample, positions: list[int], right: bool) -> Item:
    return (
        example.window_id,
        example.sampling,
        HighlightedExample(tokens=example.tokens, highlighted=sorted(positions)),
        right,
    )


def _items_v1(harvest: UnitHarvest, config: FuzzingScorerConfig, rng: random.Random) -> list[Item]:
    threshold = config.activating_fraction * score_split_max(harvest)
    items: list[Item] = []
    for example in activating_examples(harvest, config.activating_fraction)[: config.max_examples]:
        active = [i for i, a in enumerate(example.activations) if a > 0 and a >= threshold]
        quiet = [i for i, a in enumerate(example.activations) if not (a > 0 and a >= threshold)]
        items.append(_marked(example, active, True))
        if len(quiet) >= len(active):
            items.append(_marked(example, rng.sample(quiet, len(active)), False))
    return items


def _items_v2(harvest: UnitHarvest, config: FuzzingScorerConfig, rng: random.Random) -> list[Item]:
    threshold = config.activating_fraction * score_split_max(harvest)
    m = config.highlights
    positives, _ = detection_examples(harvest, config.activating_fraction, config.max_examples, 2)
    items: list[Item] = []
    for example in positives:
        ranked = sorted(range(len(example.activations)), key=lambda i: -example.activations[i])
        items.append(_marked(example, ranked[:m], True))
        quiet = [i for i, a in enumerate(example.activations) if not (a > 0 and a >= threshold)]
        if len(quiet) >= m:
            items.append(_marked(example, rng.sample(quiet, m), False))
    peak_tokens = {e.tokens[e.activations.index(e.max_activation)] for e in harvest.examples_for("score", "top")}
    for example in harvest.examples_for("score", "hard_negative")[: config.max_examples // 2]:
        at_trigger = [i for i, t in enumerate(example.tokens) if t in peak_tokens][:m]
        if at_trigger:
            items.append(_marked(example, at_trigger, False))
    quiet_random = [e for e in harvest.examples_for("score", "random") if not is_activating(e, threshold)]
    for example in quiet_random[: config.max_examples // 2]:
        if len(example.tokens) >= m:
            items.append(_marked(example, rng.sample(range(len(example.tokens)), m), False))
    return items
