"""Judging an explanation on inputs nobody explained from: held-out probe sets.

For a planted unit the probes come from its true rule: neutral corpus windows (none of the rule's
tokens in them) with the rule's tokens inserted at random places, in random contexts (held-out
snippets the agent never used), after each other at random distances, repeated, or left out. The
rule labels every probe, and about half fire and half are near-misses that hold a rule token yet
stay silent. An explanation is scored by the simulator reading only its text: detection-style
balanced accuracy (does it predict firing anywhere in the probe?) and the correlation of its
per-token predictions with the true activations.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from pydantic import BaseModel

from autointerp.agent.counterfactuals import SnippetTokens, insert
from autointerp.agent.planted import PlantedUnit
from autointerp.agent.probes import CorpusWindows
from autointerp.agent.rules import Hypothesis, Vocab, execute
from autointerp.scoring.common import balanced_accuracy
from autointerp.simulators.offline import OfflineSimulator

SOLVED = 0.95  # balanced accuracy at which a planted unit counts as solved
BASE_LENGTH = 40


class ProbeSet(BaseModel):
    """Token sequences with the unit's true activations on them."""

    tokens: list[list[int]]
    activations: list[list[float]]


class ProbeScore(BaseModel):
    balanced_accuracy: float
    correlation: float


def planted_probe_set(
    unit: PlantedUnit, corpus: CorpusWindows, snippets: SnippetTokens, vocab: Vocab, n: int = 40, seed: int = 0
) -> ProbeSet:
    """`n` probes for `unit`, labelled by its rule: half firing, half silent (near-misses first)."""
    rng = random.Random(f"{seed}:{unit.index}")
    words = [c.token for c in unit.rule.clauses] + [c.other for c in unit.rule.clauses if c.other]
    ids = [vocab.id_of(w) for w in words]
    bases = [row[:BASE_LENGTH] for row in corpus.search(r"\w", 60, without=ids)]
    candidates = [_random_probe(unit.rule, ids, rng.choice(bases), snippets, rng) for _ in range(8 * n)]
    acts = execute(unit.rule, _padded(candidates), vocab)
    firing, near, other = [], [], []
    for i, seq in enumerate(candidates):
        if float(acts[i, : len(seq)].max()) > 0:
            firing.append(i)
        else:
            (near if set(ids) & set(seq) else other).append(i)
    chosen = firing[: n // 2] + (near + other)[: n - min(len(firing), n // 2)]
    return ProbeSet(
        tokens=[candidates[i] for i in chosen],
        activations=[[round(float(a), 4) for a in acts[i, : len(candidates[i])]] for i in chosen],
    )


def _random_probe(
    rule: Hypothesis, ids: list[int], base: list[int], snippets: SnippetTokens, rng: random.Random
) -> list[int]:
    clause = rng.choice(rule.clauses)
    token = ids[rule.clauses.index(clause)]
    at = rng.randrange(len(base) + 1)
    move = rng.choice(["plain", "context", "after", "repeat", "other", "none"])
    if move == "context":
        return snippets.place(token, rng.choice(list(snippets.parts)), base, at).tokens
    if move in ("after", "other") and clause.other:
        other = ids[len(rule.clauses) + [c for c in rule.clauses if c.other].index(clause)]
        gap = list(base[at : at + rng.randrange(5)])
        return insert(base, at, [other] + gap + ([token] if move == "after" else []), "").tokens
    if move == "repeat":
        first = insert(base, at, [token], "").tokens
        return insert(first, rng.randrange(at + 1, len(first) + 1), [token], "").tokens
    if move == "none":
        return list(base)
    return insert(base, at, [token], "").tokens


def _padded(sequences: list[list[int]]) -> torch.Tensor:
    width = max(len(s) for s in sequences)
    out = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.tensor(s)
    return out


def score_text(text: str, probes: ProbeSet, vocab: Vocab, threshold: float = 0.0) -> ProbeScore:
    """The offline simulator's reading of `text`, against the true activations."""
    simulator = OfflineSimulator()
    predicted = [simulator.predict(text, [vocab.strings[t] for t in seq]) for seq in probes.tokens]
    return _score(predicted, probes.activations, threshold)


def score_rule(rule: Hypothesis, probes: ProbeSet, vocab: Vocab, threshold: float = 0.0) -> ProbeScore:
    """A rule executed exactly (no text in between): what its explanation would score if read right."""
    acts = execute(rule, _padded(probes.tokens), vocab)
    predicted = [acts[i, : len(seq)].tolist() for i, seq in enumerate(probes.tokens)]
    return _score(predicted, probes.activations, threshold)


def _score(predicted: list[list[float]], actual: list[list[float]], threshold: float) -> ProbeScore:
    fires = [max(p, default=0.0) > 0 for p in predicted]
    truth = [max(a, default=0.0) > threshold for a in actual]
    flat_p = np.array([v for p in predicted for v in p])
    flat_a = np.array([v for a in actual for v in a])
    corr = 0.0
    if flat_p.std() > 0 and flat_a.std() > 0:
        corr = float(np.corrcoef(flat_p, flat_a)[0, 1])
    ba = balanced_accuracy(fires, truth)
    return ProbeScore(balanced_accuracy=0.5 if ba is None else ba, correlation=corr)
