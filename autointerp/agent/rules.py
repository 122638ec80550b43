"""Token rules: the one language that planted units are written in and that the offline agent's
hypotheses are written in, executable over token ids.

A rule (`Hypothesis`) is a list of clauses; each clause names a token and the condition under which
it fires. Executing a rule gives an activation per token: the strongest clause that fires there.
The conditions are what a reader of code and prose would name: right after / within k tokens after
another token, not right after one, inside a string, inside a comment, in a def line, at the start of
a line, among the first k tokens, and on a repeat of the token. Contexts are read from the token text
alone, restarting at the first token (a window or a probe text is all the model sees):

- a string opens at a quote character outside strings and comments (triple quotes span lines, single
  quotes end at the line's end; an apostrophe between letters opens none) and a token is inside it
  when the string is open just before it;
- a comment opens at "#" outside strings and runs to the end of the line;
- a def line is what follows a "def" token up to the end of that line;
- a token starts a line when only whitespace lies between it and the previous newline (the first
  token does not: what came before it is unknown);
- a token that begins with a newline is in no comment, def line or single-line string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

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


class Contexts:
    """Per-position context flags [W, T] of a batch of token ids (see the module docstring)."""

    def __init__(self, tokens: torch.Tensor, vocab: Vocab) -> None:
        rows = tokens.tolist()
        flags = [_row_contexts([vocab.strings[t] for t in row]) for row in rows]
        self.flags: dict[str, torch.Tensor] = {
            name: torch.tensor([[f[k] for f in row] for row in flags], dtype=torch.bool, device=tokens.device)
            .reshape(tokens.shape)
            for k, name in enumerate(CONTEXTS)
        }

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.flags[name]


def _row_contexts(strings: list[str]) -> list[tuple[bool, bool, bool, bool]]:
    """(in_string, in_comment, in_def, line_start) for each token of one sequence."""
    text = "".join(strings)
    out = []
    state = "code"  # code, comment, or the open quote: ', ", ''' or \"\"\"
    in_def = False
    line_start = False  # what precedes the first token is unknown
    at = 0  # offset of the current token in `text`
    for s in strings:
        if s.startswith("\n"):  # a newline token ends the line: it is in no comment, def line or short string
            out.append((state in ("'''", '"""'), False, False, False))
        else:
            out.append((state not in ("code", "comment"), state == "comment", in_def, line_start and bool(s.strip())))
        if s.strip() in ("def", "async def") and state == "code":
            in_def = True
        i = at
        while i < at + len(s):
            c = text[i]
            if c == "\n":
                in_def = False
                if state in ("comment", "'", '"'):
                    state = "code"
            elif state == "code":
                if text.startswith(c * 3, i) and c in "'\"":
                    state = c * 3
                    i += 2
                elif c == '"' or (c == "'" and not _apostrophe(text, i)):
                    state = c
                elif c == "#":
                    state = "comment"
            elif state in ("'", '"'):
                if c == "\\":
                    i += 1
                elif c == state:
                    state = "code"
            elif state in ("'''", '"""') and text.startswith(state, i):
                state = "code"
                i += 2
            i += 1
        at += len(s)
        if "\n" in s:
            line_start = not s[s.rindex("\n") + 1 :].strip()
        elif s.strip():
            line_start = False
    return out


def _apostrophe(text: str, i: int) -> bool:
    """A single quote between two letters ("don't") opens no string."""
    return 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()


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


def _clause_activations(
    clause: Clause, tokens: torch.Tensor, vocab: Vocab, contexts: Contexts | None
) -> torch.Tensor:
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
