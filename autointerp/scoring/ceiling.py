"""The token-lookup ceiling: how much of a unit's score-split activity a lookup table could predict.

For each unit a table is fitted on its explain split alone: the mean activation of every
(previous token, token) pair seen there, backing off to the token's mean, then to the unit's mean.
It is applied to the same score-split windows as the simulation scorer and scored the same way
(pooled correlation, per stratum, Bills 5 + 5). An explanation written in the offline language can
say little more than such a table, so its score divided by the ceiling tells how much of the
lookup-predictable signal the explanation captured, separately from how lexical the unit is.
"""

from __future__ import annotations

from collections import defaultdict

from autointerp.records import ExampleScore, UnitHarvest
from autointerp.scoring.examples import ProtocolVersion, simulation_examples
from autointerp.scoring.simulation import simulation_parts


def fit_lookup(harvest: UnitHarvest) -> tuple[dict[tuple[str, str], float], dict[str, float], float]:
    """(pair means, token means, overall mean) over the explain split's token positions."""
    pair_sum: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    token_sum: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    total = count = 0.0
    for example in harvest.examples_for("explain"):
        for i, (token, act) in enumerate(zip(example.tokens, example.activations)):
            act = max(act, 0.0)
            token_sum[token][0] += act
            token_sum[token][1] += 1
            if i > 0:
                pair = pair_sum[(example.tokens[i - 1], token)]
                pair[0] += act
                pair[1] += 1
            total += act
            count += 1
    pairs = {key: s / n for key, (s, n) in pair_sum.items()}
    tokens = {key: s / n for key, (s, n) in token_sum.items()}
    return pairs, tokens, total / count if count else 0.0


def lookup_ceiling(harvest: UnitHarvest, protocol: ProtocolVersion = 2) -> dict[str, float | None]:
    """The fitted table's simulation parts on the score split ({"all": r, "top": r, ...})."""
    pairs, tokens, overall = fit_lookup(harvest)
    details = []
    for example in simulation_examples(harvest, protocol):
        predicted = []
        for i, token in enumerate(example.tokens):
            value = pairs.get((example.tokens[i - 1], token)) if i > 0 else None
            predicted.append(value if value is not None else tokens.get(token, overall))
        details.append(
            ExampleScore(window_id=example.window_id, sampling=example.sampling, predicted=predicted, actual=example.activations)
        )
    return simulation_parts(details)
