"""The offline explainer: token and preceding-token patterns, found by greedy least squares.

In the spirit of Neuron-to-Graph, it looks only at the explain split and asks which tokens, which
preceding tokens, and which (preceding, token) pairs account for the unit's activations. Each
candidate pattern is an indicator over token positions; the pattern that most reduces the squared
error of the current prediction is chosen, its mean activation is added where it matches, and the
search repeats on what is left. The gain of a pattern, S^2 / (n + k) for residual sum S over its n
matches, is large only when the pattern carries much of the activation mass (recall) *and* fires
reliably where present (precision); the pseudo-count k keeps rare tokens from winning on one lucky
hit. Random and silent examples count too, so a token that is everywhere but rarely fires loses.

The explanation quotes the chosen tokens in JSON double quotes and groups them by strength, e.g.
`fires most strongly on " God" (after " of"); weakly on " Lord" and any token after " the" (exact
tokens)`, which `autointerp.simulators.patterns` parses back exactly. Strengths are the patterns'
mean activation above the unit's average, so for dense units (neurons that fire a little
everywhere) only tokens that stand out are named. Deterministic; no network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from autointerp.records import Explanation, UnitHarvest
from autointerp.settings_hash import settings_hash
from autointerp.simulators.patterns import mark_exact, quote

EXPLAINER_NAME = "offline-ngram"
DEAD_UNIT_TEXT = "never fires in the explain examples"
NO_PATTERN_TEXT = "fires with no clear pattern"

# Strength tiers: (lowest ratio to the strongest pattern, the words the parser reads as that level).
_TIERS: list[tuple[float, str]] = [
    (0.85, "most strongly"),
    (0.55, "strongly"),
    (0.30, "moderately"),
    (0.0, "weakly"),
]
_START = "\x00<window start>"  # the "previous token" of a window's first position; never quoted


class OfflineExplainerConfig(BaseModel):
    """Knobs of the pattern search; all of them go into the settings hash."""

    max_patterns: int = Field(12, ge=1)  # longest list an explanation quotes
    min_support: int = Field(2, ge=1)  # firing occurrences a pattern needs (relaxed to 1 if none has)
    min_gain_fraction: float = Field(0.005, ge=0)  # stop when a pattern explains less of the sum of squares
    pseudo_count: float = Field(1.0, ge=0)  # shrinks each pattern's mean toward 0
    min_relative_strength: float = Field(0.1, ge=0, le=1)  # drop patterns weaker than this x the strongest
    use_context: bool = True  # consider preceding-token patterns


@dataclass(frozen=True)
class TokenPattern:
    """A chosen pattern: `token` at a position (None: any), `prev` right before it (None: any)."""

    token: str | None
    prev: str | None
    strength: float  # mean activation above the unit's average where this pattern is the one that applies

    @property
    def specificity(self) -> int:
        return 2 if self.token is not None and self.prev is not None else 1

    def describe(self) -> str:
        if self.token is None:
            return f"any token after {quote(self.prev or '')}"
        if self.prev is None:
            return quote(self.token)
        return f"{quote(self.token)} (after {quote(self.prev)})"


class OfflineExplainer:
    """Explains a unit from its explain-split examples with token patterns; the pipeline default."""

    name = EXPLAINER_NAME
    model: str | None = None
    prompt_version: str | None = None

    def __init__(self, config: OfflineExplainerConfig | None = None):
        self.config = config or OfflineExplainerConfig()
        self.settings_hash = settings_hash(
            {"explainer": self.name, "version": 2, "params": self.config.model_dump()}
        )

    async def explain(self, harvest: UnitHarvest) -> Explanation:
        return self.explain_now(harvest)

    def explain_now(self, harvest: UnitHarvest) -> Explanation:
        """The same as `explain`, without an event loop (it never waits on anything)."""
        return Explanation(
            unit_kind=harvest.kind,
            unit_index=harvest.index,
            text=describe_patterns(find_patterns(harvest, self.config)) if _fires(harvest) else DEAD_UNIT_TEXT,
            explainer=self.name,
            settings_hash=self.settings_hash,
        )


def _fires(harvest: UnitHarvest) -> bool:
    return any(a > 0 for e in harvest.examples_for("explain") for a in e.activations)


def find_patterns(harvest: UnitHarvest, config: OfflineExplainerConfig) -> list[TokenPattern]:
    """The patterns that best account for the unit's explain-split activations, strongest first."""
    positions = _Positions.from_harvest(harvest)
    chosen = _greedy_search(positions, config, config.min_support)
    if not chosen:
        chosen = _greedy_search(positions, config, 1)
    patterns = _fit_strengths(positions, chosen, config.pseudo_count)
    if not patterns:
        return []
    strongest = max(p.strength for p in patterns)
    kept = [p for p in patterns if p.strength >= config.min_relative_strength * strongest]
    return sorted(kept, key=lambda p: (-p.strength, p.describe()))


def describe_patterns(patterns: list[TokenPattern]) -> str:
    """Readable text that the offline simulator parses back into the same patterns and tiers (the
    closing "(exact tokens)" tells it the quotes are exact token strings)."""
    if not patterns:
        return NO_PATTERN_TEXT
    strongest = patterns[0].strength
    tiers: dict[str, list[str]] = {}
    for pattern in patterns:
        words = next(words for floor, words in _TIERS if pattern.strength >= floor * strongest)
        tiers.setdefault(words, []).append(pattern.describe())
    if len(tiers) == 1:
        return mark_exact("fires on " + _join(next(iter(tiers.values()))))
    clauses = [f"{words} on {_join(items)}" for words, items in tiers.items()]
    return mark_exact("fires " + "; ".join(clauses))


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@dataclass
class _Positions:
    """Every explain-split token position, with ids for its token, previous token and the pair."""

    acts: np.ndarray  # relu(activation) per position
    token_ids: np.ndarray
    prev_ids: np.ndarray
    pair_ids: np.ndarray
    tokens: np.ndarray  # vocabulary of token_ids
    prevs: np.ndarray  # vocabulary of prev_ids (may hold _START)
    pairs: np.ndarray  # pair id -> prev_id * len(tokens) + token_id

    @classmethod
    def from_harvest(cls, harvest: UnitHarvest) -> _Positions:
        token_list: list[str] = []
        prev_list: list[str] = []
        act_list: list[float] = []
        for example in harvest.examples_for("explain"):
            token_list.extend(example.tokens)
            prev_list.append(_START)
            prev_list.extend(example.tokens[:-1])
            act_list.extend(example.activations)
        tokens, token_ids = np.unique(np.array(token_list, dtype=object).astype(str), return_inverse=True)
        prevs, prev_ids = np.unique(np.array(prev_list, dtype=object).astype(str), return_inverse=True)
        pairs, pair_ids = np.unique(prev_ids * len(tokens) + token_ids, return_inverse=True)
        return cls(
            acts=np.maximum(np.array(act_list, dtype=np.float64), 0.0),
            token_ids=token_ids,
            prev_ids=prev_ids,
            pair_ids=pair_ids,
            tokens=tokens,
            prevs=prevs,
            pairs=pairs,
        )

    def pattern(self, family: str, ident: int, strength: float = 0.0) -> TokenPattern:
        if family == "token":
            return TokenPattern(token=str(self.tokens[ident]), prev=None, strength=strength)
        if family == "prev":
            return TokenPattern(token=None, prev=str(self.prevs[ident]), strength=strength)
        prev_id, token_id = divmod(int(self.pairs[ident]), len(self.tokens))
        return TokenPattern(token=str(self.tokens[token_id]), prev=str(self.prevs[prev_id]), strength=strength)

    def excess(self) -> np.ndarray:
        """Activation minus the unit's mean activation over the explain split."""
        return self.acts - float(self.acts.mean())

    def ids(self, family: str) -> np.ndarray:
        return {"token": self.token_ids, "prev": self.prev_ids, "pair": self.pair_ids}[family]

    def blocked(self, family: str) -> np.ndarray:
        """Candidates never quoted: anything whose previous token is the window start."""
        if family == "token":
            return np.zeros(len(self.tokens), dtype=bool)
        start = np.flatnonzero(self.prevs == _START)
        if family == "prev":
            blocked = np.zeros(len(self.prevs), dtype=bool)
            blocked[start] = True
            return blocked
        return np.isin(self.pairs // len(self.tokens), start)


def _greedy_search(
    positions: _Positions, config: OfflineExplainerConfig, min_support: int
) -> list[tuple[str, int]]:
    """(family, id) of the chosen patterns, in the order chosen."""
    families = ["token", "prev", "pair"] if config.use_context else ["token"]
    firing = (positions.acts > 0).astype(np.float64)
    counts = {f: np.bincount(positions.ids(f)) for f in families}
    allowed = {
        f: (np.bincount(positions.ids(f), weights=firing) >= min_support) & ~positions.blocked(f)
        for f in families
    }
    # Centred: the simulator's "0" for unmentioned tokens stands for the unit's typical activation,
    # so patterns must explain deviations from the mean. (For sparse units the mean is ~0 anyway;
    # for dense ones this stops frequent tokens that are merely average from winning on mass.)
    residual = positions.excess()
    total = float(np.sum(residual**2))
    chosen: list[tuple[str, int]] = []
    while len(chosen) < config.max_patterns:
        best: tuple[float, str, int] | None = None
        for family in families:
            sums = np.bincount(positions.ids(family), weights=residual, minlength=len(counts[family]))
            gains = np.where(allowed[family] & (sums > 0), sums**2 / (counts[family] + config.pseudo_count), 0.0)
            ident = int(np.argmax(gains))
            if best is None or gains[ident] > best[0]:
                best = (float(gains[ident]), family, ident)
        if best is None or best[0] <= config.min_gain_fraction * total or best[0] <= 0:
            break
        _, family, ident = best
        matches = positions.ids(family) == ident
        residual[matches] -= residual[matches].sum() / (matches.sum() + config.pseudo_count)
        allowed[family][ident] = False
        chosen.append((family, ident))
    return chosen


def _fit_strengths(
    positions: _Positions, chosen: list[tuple[str, int]], pseudo_count: float
) -> list[TokenPattern]:
    """Each pattern's strength as the simulator will use it: the (shrunk) mean excess over
    the unit's average, over the positions where it is the most specific, then strongest, match."""
    if not chosen:
        return []
    excess = positions.excess()
    masks = np.stack([positions.ids(family) == ident for family, ident in chosen])
    specificity = np.array([positions.pattern(f, i).specificity for f, i in chosen], dtype=np.float64)

    def mean_excess(where: np.ndarray) -> float:
        return float(excess[where].sum() / (where.sum() + pseudo_count))

    strengths = np.array([mean_excess(m) for m in masks], dtype=np.float64)
    for _ in range(3):  # winners depend on strengths and strengths on winners; settles fast
        above_any_strength = float(np.abs(strengths).max()) + 1.0
        rank = np.where(masks, specificity[:, None] * above_any_strength + strengths[:, None], -np.inf)
        winner = np.argmax(rank, axis=0)
        covered = masks.any(axis=0)
        strengths = np.array([mean_excess(covered & (winner == k)) for k in range(len(chosen))])
    return [
        positions.pattern(family, ident, float(s))
        for (family, ident), s in zip(chosen, strengths)
        if s > 0
    ]
