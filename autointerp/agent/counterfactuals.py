"""Building probe sequences: a token put into a chosen context inside a neutral window.

Contexts are short code or prose snippets with a hole for the token (inside a string, a comment,
a def line, at the start of a line, in plain code, in prose). The agent and the held-out probe sets
use different snippets, so an explanation is never judged on the very texts it was revised on.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from sae.tokenizer import TextTokenizer

# context name -> (text before the hole, text after it)
Snippets = dict[str, tuple[str, str]]
AGENT_SNIPPETS: Snippets = {
    "in_string": ('\nname = "the', ' value"\n'),
    "in_comment": ("\nx = 1  # the", " value\n"),
    "in_def": ("\ndef handle(self,", "):\n"),
    "line_start": ("\n", " = 1\n"),
    "code": ("\nx = y +", " * 2\n"),
    "prose": (" and the", " of it"),
}
HELDOUT_SNIPPETS: Snippets = {
    "in_string": ("\n    raise ValueError('bad", " here')\n"),
    "in_comment": ("\n    # note: keep", " for now\n"),
    "in_def": ("\n    def run(cls, data,", "=None):\n"),
    "line_start": ("\n    ", "(items)\n"),
    "code": ("\n    total = count *", " + 1\n"),
    "prose": (" which is why a", " was used"),
}


class Probe(BaseModel):
    """A token sequence and the position whose activation the probe asks about."""

    tokens: list[int]
    target: int
    purpose: str


class SnippetTokens:
    """The snippets of one set, tokenized once."""

    def __init__(self, tokenizer: TextTokenizer, snippets: Snippets) -> None:
        names = list(snippets)
        encoded = tokenizer.encode_batch([part for name in names for part in snippets[name]])
        self.parts = {name: (encoded[2 * i], encoded[2 * i + 1]) for i, name in enumerate(names)}

    def place(self, token: int, context: str, base: Sequence[int], at: int, limit: int = 64) -> Probe:
        """`token` in the `context` snippet, the snippet inserted into `base` at `at`."""
        before, after = self.parts[context]
        tokens = list(base[:at]) + before + [token] + after + list(base[at:])
        return Probe(tokens=tokens[:limit], target=at + len(before), purpose=f"{context} at {at}")


def insert(base: Sequence[int], at: int, tokens: Sequence[int], purpose: str, limit: int = 64) -> Probe:
    """`tokens` inserted into `base` at `at`; the probe asks about the last inserted token."""
    out = list(base[:at]) + list(tokens) + list(base[at:])
    return Probe(tokens=out[:limit], target=at + len(tokens) - 1, purpose=purpose)


def near_misses(token: str, ids: dict[str, list[int]], limit: int = 2) -> list[str]:
    """Tokens of the same class as `token` that a reader might lump with it: the other spacing,
    the other case, the plural or singular; each one that is a token of the vocabulary."""
    core = token.strip()
    space = token[: len(token) - len(token.lstrip())]
    forms = [
        core if space else " " + core,
        space + core.lower(), space + core.capitalize(), space + core.upper(),
        space + (core[:-1] if core.endswith("s") else core + "s"),
    ]  # fmt: skip
    out = []
    for form in forms:
        if form != token and form in ids and form not in out and form.strip():
            out.append(form)
    return out[:limit]
