"""The token classes of the explanation language: what "numbers" or "inside a string" picks out.

A class is a named test on one token position of an excerpt. Most look at the token alone
("closing parentheses", "Python keywords"); the rest look at where it sits ("comments", "at the start
of a line", "in a def line"), so every excerpt is read once into a `TokenView` that knows each
token's line, string, comment and bracket context. Tokens are the decoded strings of a byte-level
BPE, leading spaces kept (" Green", "\n    "), so tests strip whitespace before looking at words.

`CLASSES` maps each class key to its description and test; `autointerp.language` maps the English
phrases readers use ("colour words", "HTML tags", "digits") onto these keys.
"""

from __future__ import annotations

import builtins
import keyword
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np


def _vocabulary(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Word lists for the classes that are vocabularies rather than shapes.
BLOCK_KEYWORDS = _vocabulary("if elif else for while with try except finally def class async match case")
PYTHON_KEYWORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) - {"_"}
BUILTIN_NAMES = frozenset(n for n in dir(builtins) if not n.startswith("_") and n[0].islower())
EXCEPTION_NAMES = frozenset(n for n in dir(builtins) if n.endswith(("Error", "Exception", "Warning")))
COLORS = _vocabulary(
    "red green blue yellow orange purple violet pink brown black white grey gray cyan magenta "
    "teal indigo gold silver crimson maroon navy scarlet beige turquoise"
)
MONTHS = _vocabulary(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
)
WEEKDAYS = _vocabulary("monday tuesday wednesday thursday friday saturday sunday mon tue wed thu fri sat sun")
NUMBER_WORDS = _vocabulary(
    "zero one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty "
    "hundred thousand million billion first second third fourth fifth once twice"
)
ARTICLES = _vocabulary("the a an")
PREPOSITIONS = _vocabulary(
    "of in on at to from by with for about into onto over under between through during without "
    "within across against among around before after behind below above beside near toward towards upon"
)
CONJUNCTIONS = _vocabulary("and or but nor so yet because although though unless whereas while if")
PRONOUNS = _vocabulary("i me my you your he him his she her it its we us our they them their this that these those")
COMPARISON_OPERATORS = _vocabulary("== != < > <= >= <>")
ARITHMETIC_OPERATORS = _vocabulary("+ - * / // % ** @")
ASSIGNMENT_OPERATORS = _vocabulary("= += -= *= /= //= %= **= |= &= ^= >>= <<= := @=")
_OPERATOR_CHARS = frozenset("+-*/%=<>!&|^~@:")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NUMBER = re.compile(r"[+-]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?[jJlL]?\Z|0[xXoObB][0-9a-fA-F_]+\Z")
_TAG = re.compile(r"</?[A-Za-z][\w:.-]*(?:\s[^<>\n]*)?/?>|<!--.*?-->")
_URL_OR_PATH = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://|www\.)[^\s\"'<>)]+"  # URLs
    r"|(?:[A-Za-z]:)?(?:~|\.{1,2})?(?:[/\\][\w.-]+){2,}[/\\]?"  # /usr/lib/python3, C:\\x\\y
    r"|(?:[\w-]+/)+[\w-]+\.\w{1,5}\b"  # Lib/test/test_x.py
    r"|\b[\w-]+\.(?:py|txt|rst|html?|json|cfg|toml|c|h|so|dll|exe|zip|gz|csv|xml|ini|md)\b"  # a file name
)
_PROSE_WORD = re.compile(r"[A-Za-z]{2,}")


@lru_cache(maxsize=65536)
def _shape(token: str) -> str:
    return token.strip()


def _word(token: str) -> str | None:
    """The token's alphabetic word (whitespace stripped), or None when it is not one."""
    stripped = _shape(token)
    return stripped if stripped.isalpha() else None


def _in(words: frozenset[str], *, fold: bool = True) -> Callable[[str], bool]:
    def test(token: str) -> bool:
        stripped = _shape(token)
        return (stripped.lower() if fold else stripped) in words

    return test


def _has_any(chars: str) -> Callable[[str], bool]:
    return lambda token: any(c in token for c in chars)


def _is_number(token: str) -> bool:
    return _NUMBER.match(_shape(token)) is not None


def _is_upper_word(token: str) -> bool:
    word = _shape(token)
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters) and _IDENTIFIER.match(word) is not None


def _is_capitalised(token: str) -> bool:
    word = _word(token)
    return word is not None and word[0].isupper() and any(c.islower() for c in word[1:])


def _is_lower_word(token: str) -> bool:
    word = _word(token)
    return word is not None and word.islower()


def _is_operator(token: str) -> bool:
    stripped = _shape(token)
    return bool(stripped) and all(c in _OPERATOR_CHARS for c in stripped) and stripped != ":"


def _is_punctuation(token: str) -> bool:
    stripped = _shape(token)
    return bool(stripped) and all(c in string.punctuation for c in stripped)


def _is_identifier(token: str) -> bool:
    stripped = _shape(token)
    return _IDENTIFIER.match(stripped) is not None and stripped not in PYTHON_KEYWORDS


def _is_non_ascii(token: str) -> bool:
    return any(ord(c) > 127 for c in token)


def _is_whitespace(token: str) -> bool:
    return token != "" and token.strip() == ""


def _is_indentation(token: str) -> bool:
    """Spaces or tabs that indent a line: "    ", or a newline followed by them ("\n    ")."""
    body = token.lstrip("\n")
    return len(body) >= 2 and body.strip(" \t") == ""


@dataclass
class TokenView:
    """One excerpt, read once: per-token line, string, comment and bracket context."""

    tokens: tuple[str, ...]
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)  # for readers of the view

    def mask(self, name: str) -> np.ndarray:
        """Which tokens are in the named class (see `CLASSES`), computed once per excerpt."""
        key = ("class", name)
        if key not in self.memo:
            token_class, n = CLASSES[name], len(self.tokens)
            if token_class.flags is not None:  # one list for the excerpt, not n calls
                self.memo[key] = np.array(token_class.flags(self), dtype=bool)
                return self.memo[key]
            if token_class.token_test is not None:
                flags = (token_class.token_test(t) for t in self.tokens)
            else:
                flags = (token_class.test(self, i) for i in range(n))
            self.memo[key] = np.fromiter(flags, bool, n)
        return self.memo[key]

    @cached_property
    def starts(self) -> list[int]:
        """Character offset of each token in the joined text."""
        offsets, at = [], 0
        for token in self.tokens:
            offsets.append(at)
            at += len(token)
        return offsets

    @cached_property
    def text(self) -> str:
        return "".join(self.tokens)

    def _covering(self, spans: list[tuple[int, int]]) -> list[bool]:
        """Which tokens overlap any of the character spans (an empty token: lies strictly inside one)."""
        if not spans:
            return [False] * len(self.tokens)
        size = len(self.text)
        edges = np.zeros(size + 1, dtype=np.int64)
        for s, e in spans:
            edges[s] += 1
            edges[e] -= 1
        covered = np.cumsum(edges[:-1]) > 0  # per character
        before = np.concatenate(([0], np.cumsum(covered)))  # covered characters before each offset
        starts = np.array(self.starts, dtype=np.int64)
        ends = starts + np.array([len(t) for t in self.tokens], dtype=np.int64)
        flags = (before[ends] - before[starts]) > 0
        for i in np.flatnonzero(starts == ends):  # rare: "" tokens
            flags[i] = any(s < starts[i] < e for s, e in spans)
        return flags.tolist()

    @cached_property
    def lines(self) -> list[int]:
        """Line number of each token (a token holding a newline belongs to the line it ends)."""
        numbers, line = [], 0
        for token in self.tokens:
            numbers.append(line)
            line += token.count("\n")
        return numbers

    @cached_property
    def line_start(self) -> list[bool]:
        """First visible token after a newline."""
        flags, after_newline = [], False
        for token in self.tokens:
            visible = token.strip() != ""
            flags.append(after_newline and visible)
            if "\n" in token:
                after_newline = token.split("\n")[-1].strip() == ""
            elif visible:
                after_newline = False
        return flags

    @cached_property
    def line_end(self) -> list[bool]:
        """Last visible token before a newline."""
        n = len(self.tokens)
        flags = [False] * n
        for i in range(n - 1):
            if self.tokens[i].strip() and self.tokens[i + 1].startswith(("\n", " \n", "\r")):
                flags[i] = True
        return flags

    @cached_property
    def first_word_of_line(self) -> list[str]:
        """The first visible token of each token's line (stripped), "" when the line starts before the excerpt."""
        firsts: dict[int, str] = {}
        for i, token in enumerate(self.tokens):
            if self.line_start[i]:
                firsts[self.lines[i]] = _shape(token)
        return [firsts.get(line, "") for line in self.lines]

    @cached_property
    def _strings_and_comments(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int]]]:
        """Character spans of string literals, of triple-quoted strings (docstrings), of comments."""
        text, strings, triples, comments = self.text, [], [], []
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c == "#":
                end = text.find("\n", i)
                end = n if end < 0 else end
                comments.append((i, end))
                i = end
            elif c in "'\"":
                delim = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else c
                j = i + len(delim)
                while j < n and not text.startswith(delim, j):
                    if text[j] == "\\":
                        j += 1
                    elif text[j] == "\n" and len(delim) == 1:
                        break
                    j += 1
                end = min(j + len(delim), n)
                if len(delim) == 3:
                    triples.append((i, end))
                    strings.append((i, end))
                elif j < n and text[j] == c and not self._apostrophe(i):
                    strings.append((i, end))
                else:
                    end = i + 1
                i = end
            else:
                i += 1
        return strings, triples, comments

    def _apostrophe(self, at: int) -> bool:
        """A single quote between two letters ("don't") opens no string."""
        text = self.text
        return text[at] == "'" and 0 < at < len(text) - 1 and text[at - 1].isalpha() and text[at + 1].isalpha()

    @cached_property
    def in_string(self) -> list[bool]:
        return self._covering(self._strings_and_comments[0])

    @cached_property
    def in_docstring(self) -> list[bool]:
        return self._covering(self._strings_and_comments[1])

    @cached_property
    def in_comment(self) -> list[bool]:
        return self._covering(self._strings_and_comments[2])

    @cached_property
    def in_tag(self) -> list[bool]:
        return self._covering([m.span() for m in _TAG.finditer(self.text)])

    @cached_property
    def in_url_or_path(self) -> list[bool]:
        return self._covering([m.span() for m in _URL_OR_PATH.finditer(self.text)])

    @cached_property
    def prose_line(self) -> list[bool]:
        """Tokens on lines that read as English: mostly words, few code symbols."""
        per_line: dict[int, list[str]] = {}
        for line, token in zip(self.lines, self.tokens):
            per_line.setdefault(line, []).append(token)
        verdict = {}
        for line, tokens in per_line.items():
            text = "".join(tokens)
            words = _PROSE_WORD.findall(text)
            symbols = sum(1 for c in text if c in "()[]{}=_<>*/\\|@#$%^&+")
            verdict[line] = len(words) >= 4 and symbols <= len(words) // 4 and not text.rstrip().endswith(":")
        return [verdict[line] for line in self.lines]

    @cached_property
    def prose(self) -> list[bool]:
        """Natural language: comments, docstrings and prose lines."""
        return [a or b or c for a, b, c in zip(self.in_comment, self.in_docstring, self.prose_line)]

    @cached_property
    def code(self) -> list[bool]:
        return [not p and bool(t.strip()) for p, t in zip(self.prose, self.tokens)]

    @cached_property
    def bracket_depth(self) -> list[int]:
        """Open round/square/curly brackets before each token (clamped at 0: excerpts start anywhere)."""
        depths, depth = [], 0
        for token in self.tokens:
            depths.append(depth)
            delta = _bracket_delta(token)
            if delta:
                depth = max(0, depth + delta)
        return depths

    @cached_property
    def word_piece(self) -> list[bool]:
        """Tokens that are part of a word split over several tokens ("get" "attr")."""
        n, toks = len(self.tokens), self.tokens
        joins = [i > 0 and _glued(toks[i - 1], toks[i]) for i in range(n)]
        return [joins[i] or (i + 1 < n and joins[i + 1]) for i in range(n)]

    @cached_property
    def word_continuation(self) -> list[bool]:
        return [i > 0 and _glued(self.tokens[i - 1], self.tokens[i]) for i in range(len(self.tokens))]


@lru_cache(maxsize=65536)
def _bracket_delta(token: str) -> int:
    return sum(token.count(c) for c in "([{") - sum(token.count(c) for c in ")]}")


def _glued(before: str, token: str) -> bool:
    return (
        bool(before)
        and bool(token)
        and (before[-1].isalnum() or before[-1] == "_")
        and (token[0].isalnum() or token[0] == "_")
    )


@dataclass(frozen=True)
class TokenClass:
    """A class of token positions: what the explainer calls it, and the test. Classes of tokens
    (not of places) also test a token's text alone, so a caller can test each distinct token once."""

    name: str  # the English the offline explainer writes, e.g. "closing parentheses"
    test: Callable[[TokenView, int], bool]
    token_test: Callable[[str], bool] | None = None
    flags: Callable[[TokenView], list[bool]] | None = None  # a place class: every position at once

    @property
    def positional(self) -> bool:
        """Depends on where the token sits, not only on its text."""
        return self.token_test is None


def _token_class(name: str, test: Callable[[str], bool]) -> TokenClass:
    cached = lru_cache(maxsize=65536)(test)
    return TokenClass(name, lambda view, i: cached(view.tokens[i]), cached)


def _position_class(name: str, flags: Callable[[TokenView], list[bool]]) -> TokenClass:
    return TokenClass(name, lambda view, i: flags(view)[i], flags=flags)


def _line_kind(name: str, *first_words: str) -> TokenClass:
    """Tokens on a line that starts with one of the words ("def lines": def or async)."""
    return _position_class(name, lambda view: [w in first_words for w in view.first_word_of_line])


CLASSES: dict[str, TokenClass] = {
    c.name: c
    for c in [
        _token_class("numbers", _is_number),
        _token_class("upper-case words", _is_upper_word),
        _token_class("capitalised words", _is_capitalised),
        _token_class("lower-case words", _is_lower_word),
        _token_class("words", lambda t: _word(t) is not None),
        _token_class("whitespace", _is_whitespace),
        _token_class("indentation", _is_indentation),
        _token_class("newlines", lambda t: "\n" in t),
        _token_class("opening brackets", _has_any("([{")),
        _token_class("closing brackets", _has_any(")]}")),
        _token_class("opening parentheses", _has_any("(")),
        _token_class("closing parentheses", _has_any(")")),
        _token_class("opening square brackets", _has_any("[")),
        _token_class("closing square brackets", _has_any("]")),
        _token_class("opening curly braces", _has_any("{")),
        _token_class("closing curly braces", _has_any("}")),
        _token_class("brackets", _has_any("()[]{}")),
        _token_class("quotes", _has_any("'\"`")),
        _token_class("double quotes", _has_any('"')),
        _token_class("single quotes", _has_any("'")),
        _token_class("operators", _is_operator),
        _token_class("comparison operators", _in(COMPARISON_OPERATORS, fold=False)),
        _token_class("arithmetic operators", _in(ARITHMETIC_OPERATORS, fold=False)),
        _token_class("assignment operators", _in(ASSIGNMENT_OPERATORS, fold=False)),
        _token_class("punctuation", _is_punctuation),
        _token_class("commas", _has_any(",")),
        _token_class("periods", lambda t: "." in t and _is_punctuation(t)),
        _token_class("colons", lambda t: ":" in t and _is_punctuation(t)),
        _token_class("underscores", _has_any("_")),
        _token_class("Python keywords", _in(PYTHON_KEYWORDS, fold=False)),
        _token_class("block-starting keywords", _in(BLOCK_KEYWORDS, fold=False)),
        _token_class("builtins", _in(BUILTIN_NAMES, fold=False)),
        _token_class("exception names", _in(EXCEPTION_NAMES, fold=False)),
        _token_class("identifiers", _is_identifier),
        _token_class(
            "dunder names", lambda t: len(_shape(t)) > 4 and _shape(t).startswith("__") and _shape(t).endswith("__")
        ),
        _token_class("non-ASCII characters", _is_non_ascii),
        _token_class("colour words", _in(COLORS)),
        _token_class("month names", _in(MONTHS)),
        _token_class("weekday names", _in(WEEKDAYS)),
        _token_class("number words", _in(NUMBER_WORDS)),
        _token_class("articles", _in(ARTICLES)),
        _token_class("prepositions", _in(PREPOSITIONS)),
        _token_class("conjunctions", _in(CONJUNCTIONS)),
        _token_class("pronouns", _in(PRONOUNS)),
        _position_class("strings", lambda v: v.in_string),
        _position_class("docstrings", lambda v: v.in_docstring),
        _position_class("comments", lambda v: v.in_comment),
        _position_class("HTML tags", lambda v: v.in_tag),
        _position_class("URLs and file paths", lambda v: v.in_url_or_path),
        _position_class("prose", lambda v: v.prose),
        _position_class("code", lambda v: v.code),
        _position_class("the start of a line", lambda v: v.line_start),
        _position_class("the end of a line", lambda v: v.line_end),
        _position_class("bracketed tokens", lambda v: [d > 0 for d in v.bracket_depth]),
        _position_class("word pieces", lambda v: v.word_piece),
        _position_class("word continuations", lambda v: v.word_continuation),
        _line_kind("def lines", "def", "async"),
        _line_kind("class lines", "class"),
        _line_kind("import lines", "import", "from"),
        _line_kind("return lines", "return"),
        _line_kind("if lines", "if", "elif"),
        _line_kind("for lines", "for"),
        _line_kind("while lines", "while"),
        _line_kind("with lines", "with"),
        _line_kind("assert lines", "assert"),
        _line_kind("raise lines", "raise"),
    ]
}


@lru_cache(maxsize=8192)
def view_of(tokens: tuple[str, ...]) -> TokenView:
    """The read excerpt, shared by every explanation simulated on it."""
    return TokenView(tokens)


TOKEN_CLASS_NAMES = tuple(name for name, c in CLASSES.items() if not c.positional)
PLACE_CLASS_NAMES = tuple(name for name, c in CLASSES.items() if c.positional)


@lru_cache(maxsize=1 << 18)
def token_class_row(token: str) -> np.ndarray:
    """Which classes of tokens (in `TOKEN_CLASS_NAMES` order) the token is in: one row per distinct
    token, so a unit's thousands of positions cost one lookup each."""
    return np.array([CLASSES[name].token_test(token) for name in TOKEN_CLASS_NAMES], dtype=bool)  # type: ignore[misc]


@lru_cache(maxsize=1 << 16)
def place_masks(tokens: tuple[str, ...]) -> np.ndarray:
    """Every place class over one excerpt, `PLACE_CLASS_NAMES` x tokens. Cached because the same
    windows (random and quantile ones above all) are read again for unit after unit."""
    view = view_of(tokens)
    if not tokens:
        return np.zeros((len(PLACE_CLASS_NAMES), 0), dtype=bool)
    return np.stack([view.mask(name) for name in PLACE_CLASS_NAMES])


def class_masks(excerpts: list[tuple[str, ...]], vocab: list[str], token_ids: np.ndarray) -> np.ndarray:
    """Every class (in `CLASSES` order) over the excerpts' positions laid end to end, classes x
    positions; `token_ids` maps each position to its token in `vocab`."""
    rows = np.stack([token_class_row(t) for t in vocab]) if vocab else np.zeros((0, len(TOKEN_CLASS_NAMES)), bool)
    by_token = rows[token_ids].T
    by_place = (
        np.concatenate([place_masks(e) for e in excerpts], axis=1)
        if excerpts
        else np.zeros((len(PLACE_CLASS_NAMES), 0), bool)
    )
    order = {name: k for k, name in enumerate(CLASSES)}
    masks = np.zeros((len(CLASSES), len(token_ids)), dtype=bool)
    masks[[order[n] for n in TOKEN_CLASS_NAMES]] = by_token
    masks[[order[n] for n in PLACE_CLASS_NAMES]] = by_place
    return masks
