"""Reads token patterns out of an explanation's text and predicts activations from them.

This is the offline simulator's whole knowledge: quoted tokens or phrases, the strength words around
them ("most strongly", "weakly", "not"), and preceding-token context ("... after \"of\"", "any token
after \"the\""). It accepts the offline explainer's own wording exactly and LLM prose loosely: JSON
double quotes, curly quotes, backticks and single quotes all count as quotes, and when a text quotes
nothing its content words are used as tokens instead.

Matching rules, chosen so precise quotes stay precise while LLM quotes such as "God" still find the
token " God": a quote that starts with whitespace must equal the tokens exactly; one that does not is
compared with the tokens' text after leading whitespace, and also case-insensitively at a slightly
lower strength. A match must start and end on token boundaries. A text ending in "(exact tokens)",
as the offline explainer's do, declares every quote one exact token string: then only identical
tokens match (forgiving matches cost its explanations about 0.03 correlation on real units).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

FULL_STRENGTH = 10.0
CASE_INSENSITIVE_FACTOR = 0.8  # "god" for " God": probably meant, less certain
PHRASE_PREFIX_FACTOR = 0.5  # earlier tokens of a quoted multi-token phrase

# Strength words and the 0-10 level each implies. The offline explainer writes the first word of
# each of the upper four groups; the rest cover common LLM phrasing. 0 means "explicitly not".
STRENGTH_CUES: list[tuple[str, float]] = [
    (r"most strongly|strongest|most|primarily|mainly|mostly|especially|particularly|chiefly|highest", 10.0),
    (r"strongly|strong|highly|high", 7.0),
    (r"moderately|moderate|somewhat|also|less|lesser|weaker|sometimes|partially", 4.0),
    (r"weakly|weak|slightly|faintly|barely|occasionally|rarely|a little|low", 2.0),
    (r"not|never|except|excluding|no", 0.0),
]
_CUE_PATTERNS = [(re.compile(rf"\b(?:{words})\b"), level) for words, level in STRENGTH_CUES]

# One quoted string: JSON double quotes (escapes allowed), curly quotes, backticks, or single quotes
# that open after a non-word character and close before one (so "unit's" is no quote).
_QUOTE = re.compile(
    r'"(?P<json>(?:[^"\\\n]|\\.)*)"'
    r"|\u201c(?P<curly>[^\u201d\n]*)\u201d"
    r"|`(?P<tick>[^`\n]+)`"
    r"|(?<!\w)'(?P<single>[^'\n]+?)'(?!\w)"
)
EXACT_MARK = "(exact tokens)"
_CLAUSE_END = re.compile(r"[;.\n]")
# Text between two quotes that makes the second the preceding-token context of the first.
_BIND_CONTEXT = re.compile(
    r"^[\s,(]*(?:(?:only|most|mostly|especially|usually|mainly|typically|often|when|if|it|is|right|"
    r"directly|immediately|comes)\s+)*(?:after|following|follows|preceded\s+by)\s*"
    r"(?:the\s+)?(?:tokens?|words?)?\s*$"
)
# Text ending in this makes the next quote a context: the unit fires on whatever token follows it.
_NEXT_TOKEN = re.compile(
    r"\b(?:any|the|a|whatever|every)\s+(?:tokens?|words?|comes?)\s+(?:(?:right|directly|immediately)\s+)?"
    r"(?:after|following)\s*$"
)
_AND = re.compile(r"\band\b")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")
# Words of explanation prose that never stand for a token when a text quotes nothing.
_STOPWORDS = frozenset(
    """
    the and for with that this these those from into onto are was were been being has have had
    its it's their there then than when where which while who whom whose what any all some such
    very more most less least only also often usually mostly mainly especially particularly
    strongly weakly moderately slightly fires fire firing activates activate activation activations
    active unit neuron feature token tokens word words text texts phrase phrases mentions mention
    references reference related relating concept concepts context contexts appears appearing
    occurrences occurrence instances examples example explain explanation never seen clear pattern
    after before following preceded followed other others like including include includes etc
    """.split()
)


@dataclass(frozen=True)
class PatternItem:
    """One thing an explanation says the unit fires on.

    `token` is a quoted token or phrase (None: any token); `prev` a quoted token or phrase that must
    come right before it (None: any context). `strength` is 0-10; 0 means the text excludes it.
    `exact`: the quotes are exact token strings (the text says "(exact tokens)"), so no loose matching.
    """

    token: str | None
    prev: str | None
    strength: float
    exact: bool = False


def mark_exact(text: str) -> str:
    """Declare that every quote in `text` is an exact token string (what the offline explainer
    writes), so the simulator skips the whitespace- and case-forgiving matches meant for prose."""
    return f"{text} {EXACT_MARK}"


def quote(token: str) -> str:
    """A token as the offline explainer writes it: JSON double quotes, so the parse is exact."""
    return json.dumps(token, ensure_ascii=False)


@lru_cache(maxsize=4096)
def parse_explanation(text: str) -> tuple[PatternItem, ...]:
    """Every pattern item an explanation names, in order of appearance."""
    exact = text.rstrip().endswith(EXACT_MARK)
    pieces = _split_quotes(text)
    if not any(is_quote for is_quote, _ in pieces):
        return _content_word_items(text)
    items: list[PatternItem] = []
    strength = FULL_STRENGTH
    strength_before_negation = FULL_STRENGTH
    previous_quote_in_clause = False
    pending_next_token = False
    pending_bind = False
    for is_quote, piece in pieces:
        if not is_quote:
            segment = piece
            clause_ended = _CLAUSE_END.search(piece) is not None
            if clause_ended:
                strength = FULL_STRENGTH
                segment = _CLAUSE_END.split(piece)[-1]
                previous_quote_in_clause = False
            lowered = segment.lower()
            cue = _last_cue(lowered)
            if cue == 0.0 and strength > 0.0:
                strength_before_negation = strength
            if cue is not None:
                strength = cue
            elif strength == 0.0 and _AND.search(lowered):  # "not "a", and "b"": the "not" is over
                strength = strength_before_negation
            pending_bind = previous_quote_in_clause and _BIND_CONTEXT.match(lowered) is not None
            pending_next_token = not pending_bind and _NEXT_TOKEN.search(lowered) is not None
            continue
        if pending_bind and items:
            last = items.pop()
            items.append(PatternItem(token=last.token, prev=piece, strength=last.strength, exact=exact))
        elif pending_next_token:
            items.append(PatternItem(token=None, prev=piece, strength=strength, exact=exact))
        else:
            items.append(PatternItem(token=piece, prev=None, strength=strength, exact=exact))
        pending_bind = pending_next_token = False
        previous_quote_in_clause = True
    return tuple(items)


def predict_activations(items: tuple[PatternItem, ...], tokens: list[str]) -> list[float]:
    """Predicted 0-10 activation per token: the most specific matching item wins (token with
    context over token alone), then the strongest; excluded items force 0."""
    n = len(tokens)
    best: list[tuple[int, float]] = [(0, 0.0)] * n  # (specificity, value)
    excluded: set[int] = set()
    spans = _SpanFinder(tokens)
    for item in items:
        for position, value, specificity in _item_hits(item, spans, n):
            if item.strength <= 0:
                excluded.add(position)
            elif (specificity, value) > best[position]:
                best[position] = (specificity, value)
    return [0.0 if i in excluded else best[i][1] for i in range(n)]


def _item_hits(item: PatternItem, spans: _SpanFinder, n: int) -> list[tuple[int, float, int]]:
    """(position, value, specificity) for every token the item predicts to fire."""
    hits: list[tuple[int, float, int]] = []
    if item.token is None:
        if item.prev is not None:
            for _, end, quality in spans.find(item.prev, item.exact):
                if end + 1 < n:
                    hits.append((end + 1, item.strength * quality, 1))
        return hits
    prev_ends = None
    if item.prev is not None:
        prev_ends = {end for _, end, _ in spans.find(item.prev, item.exact)}
    specificity = 2 if item.prev is not None else 1
    for start, end, quality in spans.find(item.token, item.exact):
        if prev_ends is not None and start - 1 not in prev_ends:
            continue
        hits.append((end, item.strength * quality, specificity))
        for position in range(start, end):
            hits.append((position, item.strength * quality * PHRASE_PREFIX_FACTOR, specificity))
    return hits


class _SpanFinder:
    """Finds where a quoted string occurs in one token list, on token boundaries."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.stripped = [t.lstrip() for t in tokens]
        self._cache: dict[tuple[str, bool], list[tuple[int, int, float]]] = {}

    def find(self, quoted: str, exact: bool) -> list[tuple[int, int, float]]:
        """(first token, last token, quality) of every match."""
        key = (quoted, exact)
        if key not in self._cache:
            self._cache[key] = self._find(quoted, exact)
        return self._cache[key]

    def _find(self, quoted: str, exact: bool) -> list[tuple[int, int, float]]:
        if exact or not quoted.strip():  # exact tokens, or whitespace such as "\n": identical tokens
            return [(i, i, 1.0) for i, t in enumerate(self.tokens) if t == quoted]
        exact_spacing = quoted[0].isspace()
        target = quoted if exact_spacing else quoted.strip()
        folded_target = target.casefold()
        found = []
        for i in range(len(self.tokens)):
            first = self.tokens[i] if exact_spacing else self.stripped[i]
            if not first:
                continue
            end = self._match_end(i, first, target, fold=False)
            if end is not None:
                found.append((i, end, 1.0))
            elif not exact_spacing:
                end = self._match_end(i, first.casefold(), folded_target, fold=True)
                if end is not None:
                    found.append((i, end, CASE_INSENSITIVE_FACTOR))
        return found

    def _match_end(self, start: int, first: str, target: str, *, fold: bool) -> int | None:
        if first == target:
            return start
        if not target.startswith(first):
            return None
        text, j = first, start
        while len(text) < len(target) and j + 1 < len(self.tokens):
            j += 1
            text += self.tokens[j].casefold() if fold else self.tokens[j]
            if not target.startswith(text):
                return None
        return j if text == target else None


def _split_quotes(text: str) -> list[tuple[bool, str]]:
    """The text as alternating (False, prose) and (True, quoted string) pieces."""
    pieces: list[tuple[bool, str]] = []
    cursor = 0
    for match in _QUOTE.finditer(text):
        content = _quoted_content(match)
        if not content:
            continue
        pieces.append((False, text[cursor : match.start()]))
        pieces.append((True, content))
        cursor = match.end()
    pieces.append((False, text[cursor:]))
    return pieces


def _quoted_content(match: re.Match[str]) -> str:
    raw = match.group("json")
    if raw is not None:
        try:
            return json.loads(f'"{raw}"')
        except json.JSONDecodeError:
            return raw
    return match.group("curly") or match.group("tick") or match.group("single") or ""


def _last_cue(segment: str) -> float | None:
    """The level of the strength word closest to the end of the segment (longest on ties)."""
    best: tuple[int, int, float] | None = None
    for pattern, level in _CUE_PATTERNS:
        for match in pattern.finditer(segment):
            key = (match.end(), match.end() - match.start(), level)
            if best is None or key[:2] > best[:2]:
                best = key
    return None if best is None else best[2]


def _content_word_items(text: str) -> tuple[PatternItem, ...]:
    """For prose without quotes: each content word (and its singular) as a case-insensitive token."""
    items: list[PatternItem] = []
    seen: set[str] = set()
    for word in _WORD.findall(text):
        lowered = word.lower()
        if lowered in _STOPWORDS:
            continue
        forms = [lowered]
        if lowered.endswith("s") and len(lowered) > 3:
            forms.append(lowered[:-1])
        for form in forms:
            if form not in seen:
                seen.add(form)
                items.append(PatternItem(token=form, prev=None, strength=FULL_STRENGTH))
    return tuple(items)
