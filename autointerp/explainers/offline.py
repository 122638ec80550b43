"""The offline explainer: token classes, places and exact tokens, found by greedy least squares.

In the spirit of Neuron-to-Graph, it looks only at the explain split and asks which descriptions
account for the unit's activations: a token, a token after another, any token after a token, and,
in the words of `autointerp.language`, a class of tokens ("numbers", "closing parentheses"), a place
("inside a string", "at the start of a line") or any token after a class. Each candidate is an
indicator over token positions; the one that most reduces the squared error of the current prediction
is chosen, its mean activation is added where it matches, and the search repeats on what is left. The
gain of a candidate, S^2 / (n + k) for residual sum S over its n matches, is large only when it carries
much of the activation mass (recall) *and* fires reliably where present (precision); the pseudo-count k
keeps rare tokens from winning on one lucky hit. So a class is named when its members fire alike and
its other tokens stay quiet, and exact tokens are named where no class fits.

The explanation is English the offline simulator reads back into the same items, grouped by strength:
`fires most strongly on numbers (such as " 0" and " 1"); weakly on " God" (after " of") and any token
after "(" (exact tokens)`. Strengths are mean activation above the unit's average, so for dense units
only what stands out is named. Every unit kind gets the same budget of words; `Explanation.meta` says
whether it bound. Deterministic; no network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from autointerp.language import (
    NEVER_FIRES,
    AnyToken,
    ClassOf,
    Condition,
    Item,
    Literal,
    describe_item,
    join_words,
    mark_exact,
)
from autointerp.records import Explanation, UnitHarvest
from autointerp.settings_hash import settings_hash
from autointerp.token_classes import CLASSES, class_masks

EXPLAINER_NAME = "offline-ngram"
DEAD_UNIT_TEXT = NEVER_FIRES
NO_PATTERN_TEXT = "fires with no clear pattern"

# Strength tiers: (lowest ratio to the strongest pattern, the words the parser reads as that level).
_TIERS: list[tuple[float, str]] = [
    (0.85, "most strongly"),
    (0.55, "strongly"),
    (0.30, "moderately"),
    (0.0, "weakly"),
]
# Classes named as places ("any token inside a string") rather than as kinds of token.
_PLACES = frozenset(name for name, c in CLASSES.items() if c.positional)
_CLASS_FAMILIES = frozenset({"class", "prevclass"})


class OfflineExplainerConfig(BaseModel):
    """Knobs of the search; all of them go into the settings hash."""

    budget_words: int = Field(100, ge=5)  # longest explanation, in words, for every unit kind (binds rarely)
    max_candidates: int = Field(40, ge=1)  # the search stops after this many patterns
    min_support: int = Field(2, ge=1)  # firing occurrences a pattern needs (relaxed to 1 if none has)
    min_gain_fraction: float = Field(0.005, ge=0)  # stop when a pattern explains less of the sum of squares
    pseudo_count: float = Field(1.0, ge=0)  # shrinks each pattern's mean toward 0
    min_relative_strength: float = Field(0.1, ge=0, le=1)  # drop patterns weaker than this x the strongest
    use_context: bool = True  # consider preceding-token patterns
    use_classes: bool = True  # consider token classes and places (False: exact tokens only)
    max_examples: int = Field(3, ge=0)  # tokens quoted after a class, e.g. numbers (such as " 0")
    class_margin: float = Field(0.1, ge=0)  # a class is chosen over tokens only when its gain is this much higher


@dataclass(frozen=True)
class Pattern:
    """A chosen item with its fitted strength and, for a class, the members that fired most."""

    item: Item
    examples: tuple[str, ...] = ()

    @property
    def strength(self) -> float:
        return self.item.strength

    def describe(self) -> str:
        return describe_item(self.item, self.examples)


def offline_explainer_settings_hash(config: OfflineExplainerConfig) -> str:
    """The settings hash of the explanations an OfflineExplainer with `config` writes."""
    return settings_hash({"explainer": EXPLAINER_NAME, "version": 3, "params": config.model_dump()})


class OfflineExplainer:
    """Explains a unit from its explain-split examples in the explanation language; the pipeline default."""

    name = EXPLAINER_NAME
    local = True  # computes in-process: the explain stage may spread it over worker processes
    model: str | None = None
    prompt_version: str | None = None

    def __init__(self, config: OfflineExplainerConfig | None = None):
        self.config = config or OfflineExplainerConfig()
        self.settings_hash = offline_explainer_settings_hash(self.config)

    async def explain(self, harvest: UnitHarvest) -> Explanation:
        return self.explain_now(harvest)

    def explain_now(self, harvest: UnitHarvest) -> Explanation:
        """The same as `explain`, without an event loop (it never waits on anything)."""
        meta: dict[str, object] = {"budget_words": self.config.budget_words}
        if _fires(harvest):
            found = find_patterns(harvest, self.config)
            text = describe_patterns(found.patterns)
            meta |= {
                "binding": found.binding,
                "candidates": found.candidates,
                "named": len(found.patterns),
                "classes": sorted({n for p in found.patterns for n in _class_names(p.item)}),
                "words": len(text.split()),
            }
        else:
            text = DEAD_UNIT_TEXT
            meta |= {"binding": False, "candidates": 0, "named": 0, "classes": [], "words": len(text.split())}
        return Explanation(
            unit_kind=harvest.kind,
            unit_index=harvest.index,
            text=text,
            explainer=self.name,
            settings_hash=self.settings_hash,
            meta=meta,
        )


def _fires(harvest: UnitHarvest) -> bool:
    return any(a > 0 for e in harvest.examples_for("explain") for a in e.activations)


def _class_names(item: Item) -> list[str]:
    targets = [item.target, *(c.target for c in item.conditions)]
    return [name for t in targets if isinstance(t, ClassOf) for name in t.names]


@dataclass(frozen=True)
class Found:
    patterns: list[Pattern]  # strongest first
    candidates: int  # patterns the search found before the word budget
    binding: bool  # the budget dropped some of them


def find_patterns(harvest: UnitHarvest, config: OfflineExplainerConfig) -> Found:
    """The patterns that best account for the unit's explain-split activations, within the budget."""
    positions = _Positions.from_harvest(harvest, config)
    chosen = _greedy_search(positions, config, config.min_support)
    if not chosen:
        chosen = _greedy_search(positions, config, 1)
    candidates = len(chosen)
    while True:
        patterns = _finish(positions, chosen, config)
        if len(describe_patterns(patterns).split()) <= config.budget_words or len(chosen) <= 1:
            return Found(patterns, candidates, binding=len(chosen) < candidates)
        chosen = chosen[:-1]


def _finish(positions: _Positions, chosen: list[tuple[str, int]], config: OfflineExplainerConfig) -> list[Pattern]:
    fitted = _fit_strengths(positions, chosen, config.pseudo_count)
    if not fitted:
        return []
    strongest = max(s for _, s in fitted)
    items = [
        (family, ident, positions.item(family, ident, strength))
        for (family, ident), strength in fitted
        if strength >= config.min_relative_strength * strongest
    ]
    named = {item.target.text for family, _, item in items if family == "token" and isinstance(item.target, Literal)}
    kept = [
        Pattern(item, positions.examples(family, ident, config.max_examples, named) if family == "class" else ())
        for family, ident, item in items
    ]
    return sorted(kept, key=lambda p: (-p.strength, p.describe()))


def describe_patterns(patterns: list[Pattern]) -> str:
    """Readable text that the offline simulator parses back into the same items and tiers (the
    closing "(exact tokens)" tells it the quotes are exact token strings)."""
    if not patterns:
        return NO_PATTERN_TEXT
    strongest = patterns[0].strength
    tiers: dict[str, list[str]] = {}
    for pattern in patterns:
        words = next(words for floor, words in _TIERS if pattern.strength >= floor * strongest)
        tiers.setdefault(words, []).append(pattern.describe())
    if len(tiers) == 1:
        return mark_exact("fires on " + join_words(next(iter(tiers.values()))))
    clauses = [f"{words} on {join_words(items)}" for words, items in tiers.items()]
    return mark_exact("fires " + "; ".join(clauses))


_START = "\x00<window start>"  # the "previous token" of a window's first position; never quoted


@dataclass
class _Family:
    """Candidates of one shape: grouped by an id per position, or one mask row per candidate.

    Ids may come in groups (one per class, for "this token, after that class"), each counting at
    its own positions, and then candidate `g * size + i` is id i in group g: one bincount serves
    every group."""

    ids: np.ndarray | None  # per position
    masks: np.ndarray | None  # candidates x positions
    size: int  # ids per group
    make: Callable[[int, float], Item]
    groups: np.ndarray | None = None  # groups x positions: where each group's ids count

    def __post_init__(self) -> None:
        if self.groups is not None:  # the (candidate, position) pairs inside a group
            group, self._positions = np.nonzero(self.groups)
            self._candidates = group * self.size + self.ids[self._positions]  # type: ignore[index]
        if self.masks is not None:  # as `masks @ weights` would convert them, once instead of per search step
            self._numbers = self.masks.astype(np.float64)

    def mask(self, ident: int) -> np.ndarray:
        if self.ids is None:
            return self.masks[ident]  # type: ignore[index]
        if self.groups is not None:
            group, ident = divmod(ident, self.size)
            return self.groups[group] & (self.ids == ident)
        return self.ids == ident

    def totals(self, weights: np.ndarray) -> np.ndarray:
        if self.ids is None:
            return self._numbers @ weights
        if self.groups is not None:
            return np.bincount(
                self._candidates, weights=weights[self._positions], minlength=self.groups.shape[0] * self.size
            )
        return np.bincount(self.ids, weights=weights, minlength=self.size + 1)[: self.size]

    def totals_over(self, candidates: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """`totals(weights)[candidates]` (sorted ids) as a function of the weights. A groups x
        positions family then adds up only those candidates' positions, in the same order as
        `totals`, so each sum is the same to the last bit."""
        if self.groups is None:
            return lambda weights: self.totals(weights)[candidates]
        keep = np.isin(self._candidates, candidates)
        slots, positions = np.searchsorted(candidates, self._candidates[keep]), self._positions[keep]
        return lambda weights: np.bincount(slots, weights=weights[positions], minlength=len(candidates))


@dataclass
class _Positions:
    """Every explain-split token position, with the candidate families over them."""

    acts: np.ndarray  # relu(activation) per position
    tokens: list[str]
    families: dict[str, _Family]
    blocked: dict[str, np.ndarray]  # candidates never named

    @classmethod
    def from_harvest(cls, harvest: UnitHarvest, config: OfflineExplainerConfig) -> _Positions:
        examples = harvest.examples_for("explain")
        token_list: list[str] = []
        act_list: list[float] = []
        for example in examples:
            token_list.extend(example.tokens)
            act_list.extend(example.activations)
        vocab, token_ids = _distinct(token_list)
        firsts = np.cumsum([0] + [len(e.tokens) for e in examples])[:-1]  # each window's first position
        prevs, prev_ids = _previous(vocab, token_ids, firsts)
        pairs, pair_ids = np.unique(prev_ids * len(vocab) + token_ids, return_inverse=True)
        start = [i for i, p in enumerate(prevs) if p == _START]

        def exact(i: int) -> Literal:
            return Literal(str(vocab[i]), exact=True)

        def after(text: str) -> Condition:
            return Condition("after", Literal(text, exact=True))

        families = {
            "token": _Family(token_ids, None, len(vocab), lambda i, s: Item(exact(i), s)),
        }
        blocked = {"token": np.zeros(len(vocab), dtype=bool)}
        if config.use_context:
            families["prev"] = _Family(
                prev_ids, None, len(prevs), lambda i, s: Item(AnyToken(), s, (after(str(prevs[i])),))
            )
            families["pair"] = _Family(
                pair_ids, None, len(pairs),
                lambda i, s: Item(exact(int(pairs[i]) % len(vocab)), s, (after(str(prevs[int(pairs[i]) // len(vocab)])),)),
            )  # fmt: skip
            blocked["prev"] = np.isin(np.arange(len(prevs)), start)
            blocked["pair"] = np.isin(pairs // len(vocab), start)
        if config.use_classes and examples:
            names = list(CLASSES)
            masks = class_masks([tuple(e.tokens) for e in examples], vocab, token_ids)
            families["class"] = _Family(None, masks, len(names), lambda i, s: _class_item(names[i], s))
            blocked["class"] = np.zeros(len(names), dtype=bool)
            if config.use_context:  # any token after a class of tokens (not of places)
                shifted = np.zeros_like(masks)
                shifted[:, 1:] = masks[:, :-1]
                shifted[:, firsts] = False
                families["prevclass"] = _Family(
                    None,
                    shifted,
                    len(names),
                    lambda i, s: Item(AnyToken(), s, (Condition("after", ClassOf((names[i],))),)),
                )
                blocked["prevclass"] = np.array([n in _PLACES for n in names])
                # a token after a class of tokens ('" self" (after indentation)') or in a place
                # ('" self" (at the start of a line)'): one group per class, positions outside it unused
                wheres = np.where(np.array([n in _PLACES for n in names])[:, None], masks, shifted)
                conditions = [Condition("at" if n in _PLACES else "after", ClassOf((n,))) for n in names]
                families["token where class"] = _Family(
                    token_ids, None, len(vocab),
                    lambda i, s: Item(exact(i % len(vocab)), s, (conditions[i // len(vocab)],)), groups=wheres,
                )  # fmt: skip
                blocked["token where class"] = np.zeros(len(names) * len(vocab), dtype=bool)
        return cls(
            acts=np.maximum(np.array(act_list, dtype=np.float64), 0.0),
            tokens=token_list,
            families=families,
            blocked=blocked,
        )

    def item(self, family: str, ident: int, strength: float = 0.0) -> Item:
        return self.families[family].make(ident, strength)

    def mask(self, family: str, ident: int) -> np.ndarray:
        return self.families[family].mask(ident)

    def examples(self, family: str, ident: int, limit: int, named: set[str]) -> tuple[str, ...]:
        """The class members that carry most activation, leaving out tokens named on their own."""
        if limit == 0 or self.item(family, ident).target == AnyToken():
            return ()
        mass: dict[str, float] = {}
        for position in np.flatnonzero(self.mask(family, ident) & (self.acts > 0)):
            token = self.tokens[position]
            if token not in named:
                mass[token] = mass.get(token, 0.0) + float(self.acts[position])
        return tuple(sorted(mass, key=lambda t: (-mass[t], t))[:limit])

    def excess(self) -> np.ndarray:
        """Activation minus the unit's mean activation over the explain split."""
        return self.acts - float(self.acts.mean())


def _distinct(strings: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct strings, sorted, and the index of each string among them: what `np.unique(...,
    return_inverse=True)` gives for them as a numpy str array (which drops trailing NULs), made
    with one dict lookup per string instead of a sort of them all."""
    raw = set(strings)
    stripped = {s: s.rstrip("\x00") for s in raw}
    distinct = sorted(set(stripped.values()))
    index = {s: i for i, s in enumerate(distinct)}
    ids = {s: index[stripped[s]] for s in raw}
    return distinct, np.fromiter(map(ids.__getitem__, strings), np.intp, len(strings))


def _previous(vocab: list[str], token_ids: np.ndarray, firsts: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The distinct previous tokens (`_START` before each window's first position), sorted, and the
    index of each position's previous token among them: `_distinct` of the previous tokens, derived
    from the tokens' own numbers."""
    if not len(token_ids):
        return [], np.zeros(0, dtype=np.intp)
    follows = np.ones(len(token_ids), dtype=bool)
    follows[firsts] = False
    before = token_ids[np.flatnonzero(follows) - 1]
    prevs = sorted({_START, *(vocab[i] for i in np.unique(before).tolist())})
    number = {p: k for k, p in enumerate(prevs)}
    renumbered = np.array([number.get(t, -1) for t in vocab], dtype=np.intp)
    prev_ids = np.full(len(token_ids), number[_START], dtype=np.intp)
    prev_ids[follows] = renumbered[before]
    return prevs, prev_ids


def _class_item(name: str, strength: float) -> Item:
    if name in _PLACES:
        return Item(AnyToken(), strength, (Condition("at", ClassOf((name,))),))
    return Item(ClassOf((name,)), strength)


def _greedy_search(positions: _Positions, config: OfflineExplainerConfig, min_support: int) -> list[tuple[str, int]]:
    """(family, id) of the chosen patterns, in the order chosen."""
    firing = (positions.acts > 0).astype(np.float64)
    ones = np.ones_like(firing)
    # Only candidates with the support and not blocked can be chosen: the search looks at those alone.
    live = {
        f: np.flatnonzero((fam.totals(firing) >= min_support) & ~positions.blocked[f])
        for f, fam in positions.families.items()
    }
    shrunk_counts = {f: fam.totals(ones)[live[f]] + config.pseudo_count for f, fam in positions.families.items()}
    totals = {f: fam.totals_over(live[f]) for f, fam in positions.families.items()}
    unchosen = {f: np.ones(len(ids), dtype=bool) for f, ids in live.items()}
    # Centred: the simulator's "0" for unmentioned tokens stands for the unit's typical activation,
    # so patterns must explain deviations from the mean. (For sparse units the mean is ~0 anyway;
    # for dense ones this stops frequent tokens that are merely average from winning on mass.)
    residual = positions.excess()
    total = float(np.sum(residual**2))
    chosen: list[tuple[str, int]] = []
    while len(chosen) < config.max_candidates:
        best: tuple[float, str, int] | None = None
        for family in positions.families:
            if not len(live[family]):
                continue
            sums = totals[family](residual)
            gains = np.where(unchosen[family] & (sums > 0), sums**2 / shrunk_counts[family], 0.0)
            k = int(np.argmax(gains))  # the first best, as over all candidates: gains elsewhere are 0
            # A class must beat the exact tokens by a margin: on a tie, the exact words say more.
            handicap = 1.0 + config.class_margin if family in _CLASS_FAMILIES else 1.0
            if best is None or gains[k] / handicap > best[0]:
                best = (float(gains[k] / handicap), family, k)
        if best is None or best[0] <= config.min_gain_fraction * total or best[0] <= 0:
            break
        _, family, k = best
        ident = int(live[family][k])
        matches = positions.mask(family, ident)
        residual[matches] -= residual[matches].sum() / (matches.sum() + config.pseudo_count)
        unchosen[family][k] = False
        chosen.append((family, ident))
    return chosen


def _fit_strengths(
    positions: _Positions, chosen: list[tuple[str, int]], pseudo_count: float
) -> list[tuple[tuple[str, int], float]]:
    """Each pattern's strength as the simulator will use it: the (shrunk) mean excess over the unit's
    average, over the positions where it is the most specific, then strongest, match. Only positive ones."""
    if not chosen:
        return []
    excess = positions.excess()
    masks = np.stack([positions.mask(family, ident) for family, ident in chosen])
    specificity = np.array([positions.item(f, i).specificity for f, i in chosen], dtype=np.float64)

    def mean_excess(where: np.ndarray) -> float:
        return float(excess[where].sum() / (where.sum() + pseudo_count))

    strengths = np.array([mean_excess(m) for m in masks], dtype=np.float64)
    for _ in range(3):  # winners depend on strengths and strengths on winners; settles fast
        above_any_strength = float(np.abs(strengths).max()) + 1.0
        rank = np.where(masks, specificity[:, None] * above_any_strength + strengths[:, None], -np.inf)
        winner = np.argmax(rank, axis=0)
        covered = masks.any(axis=0)
        strengths = np.array([mean_excess(covered & (winner == k)) for k in range(len(chosen))])
    return [(key, float(s)) for key, s in zip(chosen, strengths) if s > 0]
