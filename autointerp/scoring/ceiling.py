"""The token-lookup ceiling: how much of a unit's score-split activity a lookup table could predict.

For each unit a table is fitted on its explain split alone: the mean activation of every
(previous token, token) pair seen there, backing off to the token's mean, then to the unit's mean.
It is applied to the same score-split windows as the simulation scorer and scored the same way
(pooled correlation, per stratum, Bills 5 + 5). An explanation written in the offline language can
say little more than such a table, so its score divided by the ceiling tells how much of the
lookup-predictable signal the explanation captured, separately from how lexical the unit is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autointerp.records import ActivationExample, ExampleScore, UnitHarvest
from autointerp.scoring.examples import ProtocolVersion, simulation_examples
from autointerp.scoring.simulation import simulation_parts


def lookup_ceiling(harvest: UnitHarvest, protocol: ProtocolVersion = 2) -> dict[str, float | None]:
    """The fitted table's simulation parts on the score split ({"all": r, "top": r, ...})."""
    fitted = harvest.examples_for("explain")
    scored = simulation_examples(harvest, protocol)
    vocab: dict[str, int] = {}
    fit_tokens, fit_first = _token_ids(fitted, vocab)
    score_tokens, score_first = _token_ids(scored, vocab)
    size = len(vocab)
    acts = np.maximum(np.array([a for e in fitted for a in e.activations], dtype=float), 0.0)
    overall = float(acts.mean()) if len(acts) else 0.0
    # token means, backing off to the unit's mean for tokens never seen
    token_sums = np.bincount(fit_tokens, weights=acts, minlength=size)
    token_counts = np.bincount(fit_tokens, minlength=size)
    token_means = np.where(token_counts > 0, token_sums / np.maximum(token_counts, 1), overall)
    # (previous token, token) means, for pairs inside one excerpt
    has_previous = ~fit_first
    pairs, where = np.unique(_pair_keys(fit_tokens, size)[has_previous], return_inverse=True)
    pair_means = np.bincount(where, weights=acts[has_previous]) / np.maximum(np.bincount(where), 1)
    keys = _pair_keys(score_tokens, size)
    slot = np.minimum(np.searchsorted(pairs, keys), max(len(pairs) - 1, 0))
    known = ~score_first & (len(pairs) > 0) & (pairs[slot] == keys) if len(pairs) else np.zeros(len(keys), dtype=bool)
    predicted = np.where(known, pair_means[slot] if len(pairs) else 0.0, token_means[score_tokens])
    starts = np.cumsum([len(e.tokens) for e in scored])[:-1]
    details = [
        ExampleScore(window_id=e.window_id, sampling=e.sampling, predicted=part.tolist(), actual=e.activations)
        for e, part in zip(scored, np.split(predicted, starts))
    ]
    return simulation_parts(details)


def _token_ids(examples: Sequence[ActivationExample], vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Every position's token id (new tokens added to `vocab`), and whether it starts its excerpt."""
    ids = [vocab.setdefault(token, len(vocab)) for e in examples for token in e.tokens]
    first = np.zeros(len(ids), dtype=bool)
    first[np.cumsum([0] + [len(e.tokens) for e in examples[:-1]])[[len(e.tokens) > 0 for e in examples]]] = True
    return np.array(ids, dtype=np.int64), first


def _pair_keys(tokens: np.ndarray, size: int) -> np.ndarray:
    """previous token id * size + token id, per position (the first position's "previous" is arbitrary)."""
    return np.roll(tokens, 1) * size + tokens
