"""Planted units: virtual units with a known rule, attached at a hook of the built-in subject model
and harvested like real ones, so an explanation can be checked against the truth.

Units are drawn from a seed, cycling over the rule families (and their variants):

- token_set: a set of three tokens, always (the control);
- after: a token only when another is among the k tokens before it (k = 1..3);
- except_after: a token except right after another;
- rare_or: a common token, or (weaker) a rare one that the top examples never show;
- position: a token among the first k tokens, or at the start of a line;
- count: a token on its repeats, more strongly each time;
- context: a token inside a string, inside a comment, or in a def line.

Tokens are chosen from a sample of the corpus so that every condition is met by some occurrences
and missed by others (a rule that always or never holds would be a plain token set).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from autointerp.agent.rules import (
    Clause,
    Condition,
    Contexts,
    Hypothesis,
    Vocab,
    execute,
)
from sae.corpus import open_corpus, select_split
from sae.harvest import HarvestConfig, UnitFunction, harvest_units, unit_records
from sae.records import UnitHarvest
from sae.subject.models import SubjectModel
from sae.windows import token_windows

# (family, condition) pairs in the order units cycle through them.
VARIANTS: list[tuple[str, Condition | str]] = [
    ("token_set", "always"),
    ("after", "after"),
    ("except_after", "not_after"),
    ("rare_or", "or"),
    ("position", "early"),
    ("position", "line_start"),
    ("count", "repeated"),
    ("context", "in_string"),
    ("context", "in_comment"),
    ("context", "in_def"),
]
FAMILIES = list(dict.fromkeys(family for family, _ in VARIANTS))
RARE_STRENGTH = 0.35
SAMPLE_WINDOWS = 1500  # corpus windows (of 64 tokens) read to choose tokens; the start of the heldout split


class PlantedUnit(BaseModel):
    """One virtual unit: its index among the planted units, its family and its rule."""

    model_config = ConfigDict(extra="forbid")

    index: int
    family: str
    variant: str
    rule: Hypothesis


class TokenStats:
    """How often each token occurs in a corpus sample, and in which contexts and after what."""

    def __init__(self, windows: torch.Tensor, vocab: Vocab) -> None:
        self.vocab = vocab
        flat = windows.reshape(-1)
        n_vocab = len(vocab.strings)
        self.count = torch.bincount(flat, minlength=n_vocab)
        contexts = Contexts(windows, vocab)
        self.in_context = {
            name: torch.bincount(flat[contexts[name].reshape(-1)], minlength=n_vocab) for name in contexts.flags
        }
        in_window = torch.zeros(windows.shape[0], n_vocab, dtype=torch.long)
        in_window.scatter_add_(1, windows, torch.ones_like(windows))
        self.repeat_windows = (in_window >= 2).sum(0)
        # distance -> token -> how often each token stands that far before it
        self.before: dict[int, dict[int, Counter[int]]] = {}
        rows = windows.tolist()
        for d in range(1, 4):
            table: dict[int, Counter[int]] = {}
            for row in rows:
                for i in range(d, len(row)):
                    table.setdefault(row[i], Counter())[row[i - d]] += 1
            self.before[d] = table

    def words(self, low: int, high: int | None = None) -> list[int]:
        """Ids of word-like tokens (identifier characters, 2+ long) seen between low and high times."""
        out = []
        for i, s in enumerate(self.vocab.strings):
            n = int(self.count[i])
            word = s.strip().isidentifier() and len(s.strip()) >= 2 and len(self.vocab.ids[s]) == 1
            if word and n >= low and (high is None or n <= high):
                out.append(i)
        return sorted(out, key=lambda i: (-int(self.count[i]), i))

    def preceders(self, token: int, within: int) -> Counter[int]:
        """How often each other token occurs among the `within` tokens before `token`."""
        found: Counter[int] = Counter()
        for d in range(1, within + 1):
            found.update(self.before[d].get(token, Counter()))
        found.pop(token, None)
        return found


def sample_stats(subject: SubjectModel, corpus: str = "stdlib", windows: int = SAMPLE_WINDOWS) -> TokenStats:
    docs = select_split(open_corpus(corpus), "heldout")
    rows = list(itertools.islice(token_windows(docs, subject.tokenizer, 64), windows))
    return TokenStats(torch.from_numpy(np.stack(rows)), subject_vocab(subject))


def subject_vocab(subject: SubjectModel) -> Vocab:
    return Vocab(subject.tokenizer.token_strings(range(subject.tokenizer.vocab_size)))


def generate_planted(stats: TokenStats, n_units: int = 50, seed: int = 0) -> list[PlantedUnit]:
    """`n_units` planted units cycling over VARIANTS, tokens drawn with `seed`."""
    rng = random.Random(seed)
    used: set[int] = set()
    units = []
    for index in range(n_units):
        family, variant = VARIANTS[index % len(VARIANTS)]
        clauses = _draw(stats, variant, rng, used)
        units.append(PlantedUnit(index=index, family=family, variant=variant, rule=Hypothesis(clauses=clauses)))
    return units


def _pick(rng: random.Random, candidates: list[int], used: set[int], top: int = 120) -> int:
    fresh = [c for c in candidates if c not in used][:top]
    if not fresh:
        raise ValueError("the corpus sample has too few suitable tokens for this many planted units")
    choice = rng.choice(fresh)
    used.add(choice)
    return choice


def _share(part: int, whole: int, low: float, high: float) -> bool:
    return whole > 0 and low <= part / whole <= high


def _draw(stats: TokenStats, variant: str, rng: random.Random, used: set[int]) -> list[Clause]:
    s = stats.vocab.strings
    common = stats.words(40)
    if variant == "always":
        return [Clause(token=s[_pick(rng, common, used)]) for _ in range(3)]
    if variant in ("after", "not_after"):
        within = rng.choice([1, 2, 3]) if variant == "after" else 1
        options = []
        for a in common[:300]:
            total = int(stats.count[a])
            for b, n in stats.preceders(a, within).most_common(8):
                if s[b].strip() and "\n" not in s[b] and n >= 5 and _share(n, total, 0.1, 0.6):
                    options.append((a, b))
                    break
        fresh = [(a, b) for a, b in options if a not in used][:120]
        if not fresh:
            raise ValueError("the corpus sample has too few suitable tokens for this many planted units")
        a, b = rng.choice(fresh)
        used.add(a)
        return [Clause(token=s[a], condition=variant, other=s[b], within=within)]  # type: ignore[arg-type]
    if variant == "or":
        a = _pick(rng, common, used)
        rare = _pick(rng, stats.words(15, 60), used, top=400)
        return [Clause(token=s[a]), Clause(token=s[rare], strength=RARE_STRENGTH)]
    if variant == "early":
        return [Clause(token=s[_pick(rng, common, used)], condition="early", within=rng.choice([8, 16]))]
    if variant == "repeated":
        repeating = [a for a in common if int(stats.repeat_windows[a]) >= 10]
        return [Clause(token=s[_pick(rng, repeating, used)], condition="repeated")]
    fits = [
        a for a in stats.words(20)
        if int(stats.in_context[variant][a]) >= 10 and _share(int(stats.in_context[variant][a]), int(stats.count[a]), 0.05, 0.8)
    ]  # fmt: skip
    return [Clause(token=s[_pick(rng, fits, used)], condition=variant)]  # type: ignore[arg-type]


def planted_unit_function(units: list[PlantedUnit], vocab: Vocab) -> UnitFunction:
    """The harvest's view of the planted units: (tokens [W, T], hook activations) -> [W, T, U]."""

    def activations(tokens: torch.Tensor, _hook_acts: torch.Tensor) -> torch.Tensor:
        contexts = Contexts(tokens.cpu(), vocab)
        cols = [execute(u.rule, tokens.cpu(), vocab, contexts) for u in units]
        return torch.stack(cols, dim=-1).to(tokens.device)

    return activations


def planted_source(subject: SubjectModel, hook: str, seed: int) -> str:
    """The catalog source holding the planted units of one seed."""
    return f"{subject.name}/{hook}/planted-seed{seed}"


def harvest_planted(
    subject: SubjectModel, hook: str, units: list[PlantedUnit], cfg: HarvestConfig
) -> list[UnitHarvest]:
    """Harvest the planted units like real ones (as kind "feature"; they have no logit effects)."""
    vocab = subject_vocab(subject)
    harvested = harvest_units(subject, hook, cfg, {"feature": planted_unit_function(units, vocab)})
    return list(unit_records("feature", harvested["feature"], subject, hook))
