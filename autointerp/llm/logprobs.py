"""Read from OpenAI-style logprobs only what simulation uses: the expected value of each number
that ends a line.

A simulation reply has ~200 tokens with 20 alternatives each, but only the ~32 activation numbers
(each the last thing on its line) matter. Walking the raw JSON once and keeping one float per such
number avoids building thousands of SDK objects per reply, and keeps the cached answer small.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_LEVEL = 10  # the 0-10 activation scale of the simulation prompts
_LINE_END = re.compile(r"[ \t]*(?:[\r\n]|$)")  # matched in place: slicing the rest of the text was quadratic


def line_end_numbers(tokens: list[dict[str, Any]], text: str) -> dict[int, float] | None:
    """For each token whose text is a number 0..10 and which ends its line: the character offset in
    `text` where the number ends -> the expected value over the numeric alternatives among its top
    logprobs (the chosen token alone when none is listed). None when the tokens do not spell `text`
    (then offsets mean nothing)."""
    pieces = [t.get("token", "") for t in tokens]
    if "".join(pieces) != text:
        return None
    found: dict[int, float] = {}
    offset = 0
    for token, piece in zip(tokens, pieces, strict=True):
        start, offset = offset, offset + len(piece)
        digits = piece.strip()
        if not (digits.isdigit() and int(digits) <= MAX_LEVEL):
            continue
        end = start + len(piece.rstrip())
        if _LINE_END.match(text, end) is None:
            continue  # not the last thing on its line (e.g. a line index)
        value = expected_level(token.get("top_logprobs") or [{"token": piece, "logprob": token.get("logprob", 0.0)}])
        if value is not None:
            found[end] = value
    return found


def expected_level(alternatives: list[dict[str, Any]]) -> float | None:
    """The probability-weighted mean of the alternatives that are numbers 0..10, renormalised."""
    total = weighted = 0.0
    for alt in alternatives:
        digits = str(alt.get("token", "")).strip()
        if digits.isdigit() and int(digits) <= MAX_LEVEL:
            p = math.exp(alt.get("logprob", -math.inf))
            total += p
            weighted += p * int(digits)
    return round(weighted / total, 4) if total > 0 else None
