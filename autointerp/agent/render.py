"""A rule written as English for the simulator to read: the only place a hypothesis becomes text
(and `read_clauses`, the only place a text's quoted tokens become clauses).

Every clause is one "; "-separated part, so a strength word never leaks into the next part. The
phrases follow the offline simulator's explanation language ("right after", "but not on ... right
after", "inside a string", "at the start of a line", "in a def line"); where that language has no
words for a condition yet ("among the 3 tokens before it", "among the first 8 tokens", "when it
repeats") the phrase is still plain English, so a reader or an LLM simulator can follow it.
"""

from __future__ import annotations

from autointerp.agent.rules import Clause, Hypothesis, Vocab
from autointerp.simulators.patterns import mark_exact, parse_explanation, quote

NOTHING = "fires on nothing in particular"
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
    return mark_exact("fires " + "; ".join(parts))


def _clause(c: Clause) -> str:
    token = quote(c.token)
    other = quote(c.other or "")
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
    """The tokens an explanation quotes, read back as clauses (a token right after a token when it
    names one): where the agent starts from, and what held-out probes for a text are built from."""
    items = [i for i in parse_explanation(explanation) if i.token is not None and i.strength > 0]
    top = max((i.strength for i in items), default=1.0)
    out: dict[str, Clause] = {}
    for item in items:
        token = item.token or ""
        if token not in vocab.ids or token in out:
            continue
        known_prev = item.prev is not None and item.prev in vocab.ids
        out[token] = Clause(
            token=token, condition="after" if known_prev else "always", other=item.prev if known_prev else None,
            strength=round(item.strength / top, 3),
        )
    return list(out.values())
