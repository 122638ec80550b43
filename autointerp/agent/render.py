"""A rule written as English for the simulator to read: the only place a hypothesis becomes text
(and `read_clauses`, the only place a text's quoted tokens become clauses).

Every clause is one "; "-separated part, so a strength word never leaks into the next part. The
phrases are plain English in the offline simulator's explanation language ("right after", "but not
on ... right after", "inside a string", "at the start of a line", "in a def line", "when ... is
among the 3 tokens before it", "among the first 8 tokens", "when it repeats, more strongly each
time"), so the simulator reads a rendered rule as the rule itself (tests/test_agent.py checks this
on held-out probes) and a person or an LLM simulator can follow it too.
"""

from __future__ import annotations

import json
import re

from autointerp.agent.rules import Clause, Hypothesis, Vocab

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
        "after": f"{token} right after {other}" if c.within == 1
        else f"{token} when {other} is among the {c.within} tokens before it",
        "not_after": f"{token}, but not on {token} right after {other}",
        "in_string": f"{token} inside a string",
        "in_comment": f"{token} inside a comment",
        "in_def": f"{token} in a def line",
        "line_start": f"{token} at the start of a line",
        "early": f"{token} among the first {c.within} tokens",
        "repeated": f"{token} when it repeats, more strongly each time",
    }
    return phrases[c.condition]


def read_clauses(explanation: str, vocab: Vocab) -> list[Clause]:
    """The tokens an explanation quotes (in JSON double quotes, as the offline explainers write
    them), read back as clauses: a token right after another when it says `(after "X")` or `right
    after "X"`, at the strength of the tier word of its part; quotes in a negated part are skipped.
    Where the agent starts from, and what held-out probes for a text are built from."""
    out: dict[str, Clause] = {}
    for part in re.split(r"[;\n]", explanation):
        lowered = part.lower()
        tier = next((level for word, level in _READ_TIERS if word in lowered), 1.0)
        negated_from = min((m.start() for m in _NEGATION.finditer(part)), default=len(part))
        for m in _QUOTED.finditer(part):
            token = json.loads(m.group(0))
            after = _AFTER.match(part, m.end())
            if m.start() >= negated_from or token not in vocab.ids or token in out or _is_context(part, m.start()):
                continue
            other = json.loads(after.group(1)) if after else None
            known = other is not None and other in vocab.ids
            out[token] = Clause(
                token=token, condition="after" if known else "always", other=other if known else None, strength=tier
            )
    return list(out.values())


_QUOTED = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_AFTER = re.compile(r'\s*\(?(?:right )?after ("(?:[^"\\\n]|\\.)*")\)?')
_NEGATION = re.compile(r"\b(?:not|except|never)\b")
_READ_TIERS = [("most strongly", 1.0), ("strongly", 0.7), ("moderately", 0.4), ("weakly", 0.2)]


def _is_context(part: str, start: int) -> bool:
    """Whether the quote at `start` is the "X" of an "after X" (a context, not a trigger)."""
    return re.search(r"after\s*$", part[:start]) is not None
