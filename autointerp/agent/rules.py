"""Token rules: the one language that planted units are written in and that the offline agent's
hypotheses are written in, executable over token ids.

A rule (`Hypothesis`) is a list of clauses; each clause names a token and the condition under which
it fires. Executing a rule gives an activation per token: the strongest clause that fires there.
The conditions are what a reader of code and prose would name: right after / within k tokens after
another token, not right after one, inside a string, inside a comment, in a def line, at the start of
a line, among the first k tokens, and on a repeat of the token. A window or a probe text is all
there is to read: the first token starts no line, and the places (string, comment, def line, line
start) are those the explanation language reads (autointerp.token_classes: a single-quoted string
counts where it closes on its line, a def line is one whose first word in the text is "def" or
"async"), so the English a rule is written as means exactly the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from autointerp.token_classes import PLACE_CLASS_NAMES, place_masks_of

Condition = Literal[
    "always", "after", "not_after", "in_string", "in_comment", "in_def", "line_start", "early", "repeated"
]
CONTEXTS: tuple[Condition, ...] = ("in_string", "in_comment", "in_def", "line_start")
MAX_REPEAT = 3  # a "repeated" clause reaches full strength on the token's fourth occurrence


class Clause(BaseModel):
    """`token` fires (at `strength`, 1.0 = the unit's strongest) when `condition` holds.

    `other` is the token an "after" / "not_after" clause refers to; `within` is the distance for
    "after" (the other token is among the `within` tokens before) and the count for "early" (the token
    is among the first `within` tokens).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str
    condition: Condition = "always"
    other: str | None = None
    within: int = Field(1, ge=1)
    strength: float = Field(1.0, gt=0)


class Hypothesis(BaseModel):
    """What a unit fires on: the union of its clauses."""

    model_config = ConfigDict(extra="forbid")

    clauses: list[Clause] = Field(default_factory=list)


@dataclass
class Vocab:
    """Token strings of a tokenizer and the ids each string names (a few byte tokens share one)."""

    strings: list[str]

    def __post_init__(self) -> None:
        self.ids: dict[str, list[int]] = {}
        for i, s in enumerate(self.strings):
            self.ids.setdefault(s, []).append(i)

    def mask(self, token: str) -> torch.Tensor:
        """[vocab] bool: the ids whose string is `token`."""
        m = torch.zeros(len(self.strings), dtype=torch.bool)
        m[self.ids.get(token, [])] = True
        return m

    def id_of(self, token: str) -> int:
        return self.ids[token][0]


# the place each context condition names, as a class of the explanation language
CONTEXT_CLASSES: dict[str, str] = {
    "in_string": "strings",
    "in_comment": "comments",
    "in_def": "def lines",
    "line_start": "the start of a line",
}


class Contexts:
    """Per-position context flags [W, T] of a batch of token ids (see the module docstring)."""

    def __init__(self, tokens: torch.Tensor, vocab: Vocab) -> None:
        rows = [tuple(vocab.strings[t] for t in row) for row in tokens.reshape(-1, tokens.shape[-1]).tolist()]
        places = place_masks_of(rows)  # every row read in one pass
        self.flags: dict[str, torch.Tensor] = {
            name: torch.tensor(
                np.stack([masks[PLACE_CLASS_NAMES.index(place)] for masks in places]),
                dtype=torch.bool,
                device=tokens.device,
            ).reshape(tokens.shape)
            for name, place in CONTEXT_CLASSES.items()
        }

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.flags[name]


def execute(rule: Hypothesis, tokens: torch.Tensor, vocab: Vocab, contexts: Contexts | None = None) -> torch.Tensor:
    """Activations [W, T] of `rule` on token ids [W, T]: per token, the strongest firing clause."""
    out = torch.zeros(tokens.shape, dtype=torch.float32, device=tokens.device)
    if any(c.condition in CONTEXTS for c in rule.clauses) and contexts is None:
        contexts = Contexts(tokens, vocab)
    for clause in rule.clauses:
        out = torch.maximum(out, _clause_activations(clause, tokens, vocab, contexts))
    return out


def _is(token: str, tokens: torch.Tensor, vocab: Vocab) -> torch.Tensor:
    return vocab.mask(token).to(tokens.device)[tokens]


def _shifted(mask: torch.Tensor, by: int) -> torch.Tensor:
    """mask moved `by` positions later (the first `by` positions become False)."""
    out = torch.zeros_like(mask)
    if by < mask.shape[1]:
        out[:, by:] = mask[:, :-by]
    return out


def _clause_activations(clause: Clause, tokens: torch.Tensor, vocab: Vocab, contexts: Contexts | None) -> torch.Tensor:
    hit = _is(clause.token, tokens, vocab)
    cond = clause.condition
    if cond == "after" or cond == "not_after":
        other = _is(clause.other or "", tokens, vocab)
        span = clause.within if cond == "after" else 1
        near = torch.zeros_like(hit)
        for d in range(1, span + 1):
            near |= _shifted(other, d)
        hit = hit & near if cond == "after" else hit & ~near
    elif cond in CONTEXTS:
        assert contexts is not None
        hit = hit & contexts[cond]
    elif cond == "early":
        hit = hit & (torch.arange(tokens.shape[1], device=tokens.device) < clause.within)[None, :]
    value = hit.float() * clause.strength
    if cond == "repeated":
        earlier = torch.cumsum(hit.long(), dim=1) - hit.long()
        value = value * earlier.clamp(max=MAX_REPEAT).float() / MAX_REPEAT
    return value
