"""Judging an explanation on inputs nobody explained from: held-out probe sets.

For a real unit the probes come from the explanation being judged (`explanation_probes`): its
tokens where it says the unit fires, and near-misses where it says the unit does not; the unit's
own activation at each probe's target token is the truth.

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

from autointerp.agent.counterfactuals import Probe, SnippetTokens, insert, near_misses
from autointerp.agent.planted import PlantedUnit
from autointerp.agent.probes import CorpusWindows
from autointerp.agent.rules import CONTEXTS, Clause, Hypothesis, Vocab, execute
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
    firing: list[int] = []
    near: list[int] = []
    other: list[int] = []
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


# --- real units: probes generated from the explanation being judged ---------------------------------


def explanation_probes(
    rule: Hypothesis,
    corpus: CorpusWindows,
    snippets: SnippetTokens,
    vocab: Vocab,
    key: str,
    per_clause: int = 3,
    max_clauses: int = 4,
) -> list[Probe]:
    """For each of the rule's strongest clauses: texts where it says the unit fires (its token where
    its condition holds) and near-misses where it says the unit stays silent (the condition broken,
    or a near-miss token of the same class in its place)."""
    rng = random.Random(key)
    clauses = sorted(rule.clauses, key=lambda c: -c.strength)[:max_clauses]
    words = [c.token for c in clauses] + [c.other for c in clauses if c.other]
    bases = [row[:BASE_LENGTH] for row in corpus.search(r"\w", 30, without=[vocab.id_of(w) for w in words])]
    probes: list[Probe] = []
    for clause in clauses:
        token = vocab.id_of(clause.token)
        misses = [vocab.id_of(t) for t in near_misses(clause.token, vocab.ids)]
        for _ in range(per_clause):
            base, at = rng.choice(bases), rng.randrange(5, BASE_LENGTH - 5)
            probes.append(_fitting(clause, token, base, at, snippets, vocab))
            probes.append(_breaking(clause, token, misses, base, at, snippets, vocab, rng))
    return probes


def _fitting(clause: Clause, token: int, base: list[int], at: int, snippets: SnippetTokens, vocab: Vocab) -> Probe:
    cond = clause.condition
    if cond in CONTEXTS:
        return snippets.place(token, cond, base, at)
    if cond == "after":
        gap = list(base[at : at + clause.within - 1])
        return insert(base, at, [vocab.id_of(clause.other or "")] + gap + [token], "fits")
    if cond == "early":
        return insert(base, min(at, clause.within - 1), [token], "fits")
    if cond == "repeated":
        return insert(insert(base, at // 2, [token], "").tokens, at + 1, [token], "fits")
    return insert(base, at, [token], "fits")


def _breaking(
    clause: Clause,
    token: int,
    misses: list[int],
    base: list[int],
    at: int,
    snippets: SnippetTokens,
    vocab: Vocab,
    rng: random.Random,
) -> Probe:
    cond = clause.condition
    if cond == "always" or (cond == "not_after" and misses and rng.random() < 0.5):
        if not misses:
            return insert(base, at, [token], "fits")  # nothing near to miss with: one more positive check
        return insert(base, at, [rng.choice(misses)], "near-miss token")
    if cond in CONTEXTS:
        return snippets.place(token, "prose" if cond != "in_string" else "code", base, at)
    if cond == "not_after":
        return insert(base, at, [vocab.id_of(clause.other or ""), token], "breaks it")
    if cond == "early":
        return insert(base, max(at, clause.within + 4), [token], "breaks it")
    return insert(base, at, [token], "breaks it")  # after / repeated: the token alone


def score_at_targets(text: str, probes: list[Probe], actual: list[float], threshold: float, vocab: Vocab) -> ProbeScore:
    """The simulator's prediction at each probe's target position against the unit's activation there."""
    simulator = OfflineSimulator()
    predicted = [simulator.predict(text, [vocab.strings[t] for t in p.tokens])[p.target] for p in probes]
    return _score([[v] for v in predicted], [[a] for a in actual], threshold)
