"""Which held-out examples each scorer uses, and what counts as "activating".

Scorers only ever read the score split. A window counts as activating when its maximum reaches a
fraction of the unit's largest score-split activation; the non-activating class is the harvest's
silent windows plus random windows below that threshold, so dense units (every window fires a
little) still have one.
"""

from __future__ import annotations

from sae.records import ActivationExample, UnitHarvest


def score_split_max(harvest: UnitHarvest) -> float:
    return max((e.max_activation for e in harvest.examples_for("score")), default=0.0)


def activating_examples(harvest: UnitHarvest, fraction: float) -> list[ActivationExample]:
    """Top and quantile windows whose maximum reaches `fraction` of the unit's score-split max."""
    threshold = fraction * score_split_max(harvest)
    return [
        e
        for e in harvest.examples_for("score", "top", "quantile")
        if e.max_activation > 0 and e.max_activation >= threshold
    ]


def non_activating_examples(harvest: UnitHarvest, fraction: float) -> list[ActivationExample]:
    """Silent windows (for a dense unit the harvest fills these with its least active windows, which
    are the contrast that matters), then random windows whose maximum stays below that threshold."""
    threshold = fraction * score_split_max(harvest)
    quiet_random = [e for e in harvest.examples_for("score", "random") if e.max_activation <= 0 or e.max_activation < threshold]
    return harvest.examples_for("score", "silent") + quiet_random
