"""Which held-out examples each scorer uses, and what counts as "activating", per protocol version.

Scorers only ever read the score split. A window counts as activating when its maximum reaches a
fraction of the unit's largest score-split activation.

Protocol 1 (the first release; kept so old numbers can be reproduced): simulation on top + random
windows; detection on the strongest windows against silent ones; fuzzing highlights every active
token, so a dense unit's excerpts carry many more highlights than a sparse one's.

Protocol 2 (default), stratified in the spirit of delphi: simulation on top, activation-quantile,
random and hard-negative windows, reported per stratum and pooled; detection positives drawn from
the top and across the quantiles, negatives from quiet random windows and hard negatives (windows
holding the unit's own trigger tokens where it stays quiet), topped up with silent windows only when
those run short; fuzzing highlights the same number of tokens in every window of every unit.
"""

from __future__ import annotations

from typing import Literal

from sae.records import ActivationExample, Sampling, UnitHarvest

ProtocolVersion = Literal[1, 2]
PROTOCOL_VERSION: ProtocolVersion = 2
STRATA: tuple[Sampling, ...] = ("top", "quantile", "random", "hard_negative")


def score_split_max(harvest: UnitHarvest) -> float:
    return max((e.max_activation for e in harvest.examples_for("score")), default=0.0)


def is_activating(example: ActivationExample, threshold: float) -> bool:
    return example.max_activation > 0 and example.max_activation >= threshold


def activating_examples(harvest: UnitHarvest, fraction: float) -> list[ActivationExample]:
    """Top and quantile windows whose maximum reaches `fraction` of the unit's score-split max."""
    threshold = fraction * score_split_max(harvest)
    return [e for e in harvest.examples_for("score", "top", "quantile") if is_activating(e, threshold)]


def non_activating_examples(harvest: UnitHarvest, fraction: float) -> list[ActivationExample]:
    """Protocol 1: silent windows (for a dense unit the least active ones), then quiet random ones."""
    threshold = fraction * score_split_max(harvest)
    quiet_random = [e for e in harvest.examples_for("score", "random") if not is_activating(e, threshold)]
    return harvest.examples_for("score", "silent") + quiet_random


def simulation_examples(harvest: UnitHarvest, protocol: ProtocolVersion) -> list[ActivationExample]:
    """Protocol 1: top then random windows (silent ones when there are no random ones).
    Protocol 2: every stratum of `STRATA`, in that order."""
    if protocol == 1:
        random_part = harvest.examples_for("score", "random") or harvest.examples_for("score", "silent")
        return harvest.examples_for("score", "top") + random_part
    return [e for stratum in STRATA for e in harvest.examples_for("score", stratum)]


def detection_examples(
    harvest: UnitHarvest, fraction: float, per_class: int, protocol: ProtocolVersion
) -> tuple[list[ActivationExample], list[ActivationExample]]:
    """(positives, negatives), each at most `per_class` long."""
    if protocol == 1:
        return (
            activating_examples(harvest, fraction)[:per_class],
            non_activating_examples(harvest, fraction)[:per_class],
        )
    threshold = fraction * score_split_max(harvest)
    top = [e for e in harvest.examples_for("score", "top") if is_activating(e, threshold)]
    quantile = [e for e in harvest.examples_for("score", "quantile") if is_activating(e, threshold)]
    n_top = min(len(top), max(1, per_class // 5, per_class - len(quantile)))
    positives = top[:n_top] + _spread(quantile, per_class - n_top)
    hard = harvest.examples_for("score", "hard_negative")
    quiet_random = [e for e in harvest.examples_for("score", "random") if not is_activating(e, threshold)]
    n_hard = min(len(hard), per_class // 2)
    negatives = quiet_random[: per_class - n_hard] + hard[:n_hard]
    negatives += hard[n_hard : n_hard + per_class - len(negatives)]
    negatives += harvest.examples_for("score", "silent")[: per_class - len(negatives)]
    return positives, negatives


def _spread(examples: list[ActivationExample], n: int) -> list[ActivationExample]:
    """`n` examples spread evenly over the list (quantile windows come ordered by band)."""
    if n >= len(examples):
        return list(examples)
    if n <= 0:
        return []
    step = len(examples) / n
    return [examples[int(i * step)] for i in range(n)]
