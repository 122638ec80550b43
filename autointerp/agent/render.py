"""A rule written as English for the simulator to read: the only place a hypothesis becomes text
(and `read_clauses`, the only place a text's quoted tokens become clauses).

Every clause is one "; "-separated part, so a strength word never leaks into the next part. The
phrases are plain English in the offline simulator's explanation language ("right after", "but not
right after", "inside a string", "at the start of a line", "in a def line", "when ... is
among the 3 tokens before it", "among the first 8 tokens", "when it repeats, more strongly each
time"), so the simulator reads a rendered rule as the rule itself (tests/test_agent.py checks this
on held-out probes) and a person or an LLM simulator can follow it too.
"""

from __future__ import annotations

import json
from dataclasses import replace

from autointerp.agent.rules import CONTEXT_CLASSES, Clause, Hypothesis, Vocab
from autointerp.language import FULL_STRENGTH, ClassOf, Condition, Literal, parse

NOTHING = "fires on nothing in particular"
EXACT_MARK = "(exact tokens)"  # the quotes are exact token strings
_TIERS: list[tuple[float, str]] = [(0.85, ""), (0.55, "strongly "), (0.3, "moderately "), (0.0, "weakly ")]


def render(rule: Hypothesis) -> str:
    """The rule as one English sentence; quotes are exact token strings."""
    if not rule.clauses:
        return NOTHING
    top = max(c.strength for c in rule.clauses)
    ordered = sorted(rule.clauses, key=lambda c: -c.strength)
    parts = []
    for clause in ordered:
        tier = next(words for floor, words in _TIERS if clause.strength >= floor * top)
        parts.append(f"{tier}on {_clause(clause)}")
    return f"fires {'; '.join(parts)} {EXACT_MARK}"


def _clause(c: Clause) -> str:
    token = json.dumps(c.token, ensure_ascii=False)
    other = json.dumps(c.other or "", ensure_ascii=False)
    phrases = {
        "always": token,
        "after": f"{token} right after {other}"
        if c.within == 1
        else f"{token} when {other} is among the {c.within} tokens before it",
        "not_after": f"{token}, but not right after {other}",
        "in_string": f"{token} inside a string",
        "in_comment": f"{token} inside a comment",
        "in_def": f"{token} in a def line",
        "line_start": f"{token} at the start of a line",
        "early": f"{token} among the first {c.within} tokens",
        "repeated": f"{token} when it repeats, more strongly each time",
    }
    return phrases[c.condition]


def read_clauses(explanation: str, vocab: Vocab) -> list[Clause]:
    """The token clauses an explanation states, as the explanation language reads it: each quoted
    token of the vocabulary that it says fires, with the first of its conditions that a rule has
    (else always), at its strength word's level (1.0, 0.7, 0.4, 0.2); "but not right after X" makes
    it a not-after clause. Classes, and excluded tokens, give no clause. Where the agent starts
    from, and what held-out probes for a text are built from."""
    items = parse(explanation).items
    out: dict[str, Clause] = {}
    for item in items:
        token = item.target.text if isinstance(item.target, Literal) else None
        if item.excluded or token is None or token not in vocab.ids or token in out:
            continue
        clause = Clause(token=token, strength=item.strength / FULL_STRENGTH)
        out[token] = next((c for c in (_with(clause, k, vocab) for k in item.conditions) if c), clause)
    for item in items:  # 'X, but not on X right after Y': the excluded item narrows X
        token = item.target.text if isinstance(item.target, Literal) else None
        if item.excluded and token in out and out[token].condition == "always" and len(item.conditions) == 1:
            narrowed = _with(out[token], replace(item.conditions[0], negated=True), vocab)
            if narrowed is not None:
                out[token] = narrowed
    return list(out.values())


_PLACES = {place: condition for condition, place in CONTEXT_CLASSES.items()}


def _with(clause: Clause, condition: Condition, vocab: Vocab) -> Clause | None:
    """`clause` under `condition`, if a rule can say it."""
    target = condition.target
    other = target.text if isinstance(target, Literal) and target.text in vocab.ids else None
    if condition.where == "after" and other is not None and (not condition.negated or condition.span == 1):
        kind = "not_after" if condition.negated else "after"
        return clause.model_copy(update={"condition": kind, "other": other, "within": condition.span})
    if condition.negated:
        return None
    if condition.where == "at" and isinstance(target, ClassOf) and target.names[0] in _PLACES:
        return clause.model_copy(update={"condition": _PLACES[target.names[0]]})
    if condition.where == "first":
        return clause.model_copy(update={"condition": "early", "within": condition.span})
    if condition.where == "repeat":
        return clause.model_copy(update={"condition": "repeated"})
    return None
