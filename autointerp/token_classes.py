"""The token classes of the explanation language: what "numbers" or "inside a string" picks out.

A class is a named test on one token position of an excerpt. Most look at the token alone
("closing parentheses", "Python keywords"); the rest look at where it sits ("comments", "at the start
of a line", "in a def line"), so excerpts are read once, many at a time, into `Places` that know each
token's line, string, comment and bracket context, and their masks are kept per excerpt. Tokens are the decoded strings of a byte-level
BPE, leading spaces kept (" Green", "\n    "), so tests strip whitespace before looking at words.

`CLASSES` maps each class key to its description and test; `autointerp.language` maps the English
phrases readers use ("colour words", "HTML tags", "digits") onto these keys.
"""

from __future__ import annotations

import builtins
import keyword
import re
import string
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache

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
_FILE_EXTENSION = r"\.(?:py|txt|rst|html?|json|cfg|toml|c|h|so|dll|exe|zip|gz|csv|xml|ini|md)\b"
_URL_OR_PATH = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://|www\.)[^\s\"'<>)]+"  # URLs
    r"|(?:[A-Za-z]:)?(?:~|\.{1,2})?(?:[/\\][\w.-]+){2,}[/\\]?"  # /usr/lib/python3, C:\\x\\y
    r"|(?:[\w-]+/)+[\w-]+\.\w{1,5}\b"  # Lib/test/test_x.py
    r"|\b[\w-]+" + _FILE_EXTENSION  # a file name
)
# The runs of non-blank text that hold a slash, "www." or a file extension: every URL or path lies
# inside one of them (as each alternative above needs one of those).
_URL_RUN = re.compile(r"(?<!\S)[^\s/\\]*?(?:[/\\]|www\.|" + _FILE_EXTENSION + r")\S*")
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


_QUOTE_OR_HASH = re.compile(r"[#'\"]")


def _strings_and_comments(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int]]]:
    """Character spans of string literals, of triple-quoted strings (docstrings), of comments."""
    strings: list[tuple[int, int]] = []
    triples: list[tuple[int, int]] = []
    comments: list[tuple[int, int]] = []
    n = len(text)
    opener = _QUOTE_OR_HASH.search(text)
    while opener is not None:
        i = opener.start()
        c = text[i]
        if c == "#":
            end = text.find("\n", i)
            end = n if end < 0 else end
            comments.append((i, end))
        else:
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
            elif j < n and text[j] == c and not _apostrophe(text, i):
                strings.append((i, end))
            else:
                end = i + 1
        opener = _QUOTE_OR_HASH.search(text, end)
    return strings, triples, comments


def _urls_and_paths(text: str) -> list[tuple[int, int]]:
    """The spans `_URL_OR_PATH.finditer(text)` finds, searched for only in the runs that can hold
    one (a match has no blank; the blanks around a run read as its ends, as in the whole text)."""
    return [m.span() for run in _URL_RUN.finditer(text) for m in _URL_OR_PATH.finditer(text, *run.span())]


def _apostrophe(text: str, at: int) -> bool:
    """A single quote between two letters ("don't") opens no string."""
    return text[at] == "'" and 0 < at < len(text) - 1 and text[at - 1].isalpha() and text[at + 1].isalpha()


@lru_cache(maxsize=1 << 16)
def _prose_verdict(line: str) -> bool:
    """A line that reads as English: mostly words, few code symbols."""
    words = _PROSE_WORD.findall(line)
    symbols = sum(1 for c in line if c in "()[]{}=_<>*/\\|@#$%^&+")
    return len(words) >= 4 and symbols <= len(words) // 4 and not line.rstrip().endswith(":")


@lru_cache(maxsize=1 << 18)
def _token_facts(token: str) -> bytes:
    """What the place tests need of one token's text, as 8 int64s: its length, newlines, whether it
    shows anything, whether what follows its last newline is blank, whether it breaks the line before
    it, whether it starts and ends like a word, and its bracket balance. Bytes, so that the facts of
    thousands of positions join into one array at C speed."""
    facts = (
        len(token),
        token.count("\n"),
        token.strip() != "",
        "\n" in token and token.split("\n")[-1].strip() == "",
        token.startswith(("\n", " \n", "\r")),
        bool(token) and (token[0].isalnum() or token[0] == "_"),
        bool(token) and (token[-1].isalnum() or token[-1] == "_"),
        sum(token.count(c) for c in "([{") - sum(token.count(c) for c in ")]}"),
    )
    return np.array(facts, dtype=np.int64).tobytes()


class Places:
    """Excerpts laid end to end, read once: per-token line, string, comment and bracket context.

    Each excerpt is read on its own (a line, string or bracket never runs from one into the next);
    laying them end to end lets every test be a few array operations over all of them at once."""

    def __init__(self, excerpts: list[tuple[str, ...]]) -> None:
        self.excerpts = excerpts
        self.tokens = [t for e in excerpts for t in e]
        n = len(self.tokens)
        facts = np.frombuffer(b"".join(map(_token_facts, self.tokens)), dtype=np.int64).reshape(n, 8)
        self._length, self._newlines, self.visible = facts[:, 0], facts[:, 1], facts[:, 2] > 0
        self._tail_blank, self._breaks, self._starts_word, self._ends_word = (facts[:, k] > 0 for k in range(3, 7))
        self._brackets = facts[:, 7]
        counts = np.array([len(e) for e in excerpts], dtype=np.int64)
        self._excerpt = np.repeat(np.arange(len(excerpts)), counts)  # which excerpt each position is in
        self._first = (np.cumsum(counts) - counts)[self._excerpt]  # its excerpt's first position
        self.char_end = np.cumsum(self._length)  # in the excerpts' texts laid end to end
        self.char_start = self.char_end - self._length

    def _within(self, running: np.ndarray) -> np.ndarray:
        """An exclusive running total started afresh at each excerpt."""
        before = np.cumsum(running) - running
        return before - before[self._first]

    def _previous(self, flags: np.ndarray) -> np.ndarray:
        """The flag of the position before, in the same excerpt (False at each excerpt's start)."""
        out = np.zeros_like(flags)
        out[1:] = flags[:-1]
        out[self._first == np.arange(len(flags))] = False
        return out

    def _next(self, flags: np.ndarray) -> np.ndarray:
        """The flag of the position after, in the same excerpt (False at each excerpt's end)."""
        out = np.zeros_like(flags)
        out[:-1] = flags[1:] & (self._first[1:] != np.arange(1, len(flags)))
        return out

    @cached_property
    def _spans(self) -> dict[str, list[tuple[int, int]]]:
        """Character spans, in the excerpts laid end to end, of each kind of place read from the text."""
        spans: dict[str, list[tuple[int, int]]] = {k: [] for k in ("string", "docstring", "comment", "tag", "url")}
        base = 0
        for excerpt in self.excerpts:
            text = "".join(excerpt)
            found = (*_strings_and_comments(text), [m.span() for m in _TAG.finditer(text)], _urls_and_paths(text))
            for kind, local in zip(spans, found):
                spans[kind].extend((base + s, base + e) for s, e in local)
            base += len(text)
        return spans

    def _covering(self, kind: str) -> np.ndarray:
        """Which tokens overlap a span of the kind (an empty token: lies strictly inside one)."""
        spans = self._spans[kind]
        flags = np.zeros(len(self.tokens), dtype=bool)
        if not spans:
            return flags
        edges = np.zeros(int(self.char_end[-1]) + 1, dtype=np.int64)
        bounds = np.array(spans, dtype=np.int64)
        np.add.at(edges, bounds[:, 0], 1)
        np.add.at(edges, bounds[:, 1], -1)
        covered = np.concatenate(([0], np.cumsum(np.cumsum(edges[:-1]) > 0)))  # covered characters before
        flags = (covered[self.char_end] - covered[self.char_start]) > 0
        for i in np.flatnonzero(self._length == 0):  # rare: "" tokens
            flags[i] = any(s < self.char_start[i] < e for s, e in spans)
        return flags

    @cached_property
    def in_string(self) -> np.ndarray:
        return self._covering("string")

    @cached_property
    def in_docstring(self) -> np.ndarray:
        return self._covering("docstring")

    @cached_property
    def in_comment(self) -> np.ndarray:
        return self._covering("comment")

    @cached_property
    def in_tag(self) -> np.ndarray:
        return self._covering("tag")

    @cached_property
    def in_url_or_path(self) -> np.ndarray:
        return self._covering("url")

    @cached_property
    def line_start(self) -> np.ndarray:
        """First visible token after a newline: a token with a newline leaves the next line started
        when only blanks follow its last newline, any other visible token ends the line's start."""
        n = len(self.tokens)
        says = (self._newlines > 0) | self.visible  # tokens that set "a line has just started"
        last = np.maximum.accumulate(np.where(says, np.arange(n), -1))  # the last of them so far
        started = (last >= self._first) & self._tail_blank[np.maximum(last, 0)]
        return self.visible & self._previous(started)

    @cached_property
    def line_end(self) -> np.ndarray:
        """Last visible token before a newline."""
        return self.visible & self._next(self._breaks)

    @cached_property
    def _lines(self) -> tuple[np.ndarray, np.ndarray]:
        """Each position's line, numbered across the excerpts (a token holding a newline belongs to
        the line it ends), and the first position of each line."""
        line = np.cumsum(self._newlines) - self._newlines + self._excerpt  # a new number in each excerpt
        new = np.diff(line, prepend=-1) != 0
        return np.cumsum(new) - 1, np.flatnonzero(new)

    @cached_property
    def prose_line(self) -> np.ndarray:
        """Tokens on lines that read as English: mostly words, few code symbols."""
        line, firsts = self._lines
        text = "".join(self.tokens)
        ends = np.append(firsts[1:], len(self.tokens)) - 1
        starts, stops = self.char_start[firsts].tolist(), self.char_end[ends].tolist()
        verdicts = np.array([_prose_verdict(text[a:b]) for a, b in zip(starts, stops)], dtype=bool)
        return verdicts[line] if len(line) else np.zeros(0, dtype=bool)

    @cached_property
    def _line_heads(self) -> tuple[list[str], np.ndarray]:
        """The distinct first words of lines ("" for a line that starts before its excerpt), and per
        position the index of its line's first word among them."""
        line, firsts = self._lines
        starts = np.flatnonzero(self.line_start)  # at most one per line
        first_words = [_shape(self.tokens[p]) for p in starts.tolist()]
        number = {word: k for k, word in enumerate(dict.fromkeys(["", *first_words]))}
        heads = np.zeros(len(firsts), dtype=np.int64)
        heads[line[starts]] = [number[word] for word in first_words]
        return list(number), heads[line]

    def line_starts_with(self, words: frozenset[str]) -> np.ndarray:
        heads, index = self._line_heads
        return np.array([w in words for w in heads], dtype=bool)[index]

    @cached_property
    def prose(self) -> np.ndarray:
        """Natural language: comments, docstrings and prose lines."""
        return self.in_comment | self.in_docstring | self.prose_line

    @cached_property
    def code(self) -> np.ndarray:
        return ~self.prose & self.visible

    @cached_property
    def bracketed(self) -> np.ndarray:
        """Tokens after more opening than closing brackets, counted from the excerpt's start and never
        below 0 (excerpts start anywhere): the depth is the count minus its lowest value so far."""
        count = self._within(self._brackets)
        # each excerpt's counts shifted below every earlier excerpt's, so one running minimum serves all
        shift = 2 * int(np.abs(self._brackets).sum()) + 1
        shifted = count - self._excerpt * shift
        return shifted - np.minimum.accumulate(shifted) > 0

    @cached_property
    def word_continuation(self) -> np.ndarray:
        """Tokens glued to the one before: a word character on each side of the seam."""
        return self._starts_word & self._previous(self._ends_word)

    @cached_property
    def word_piece(self) -> np.ndarray:
        """Tokens that are part of a word split over several tokens ("get" "attr")."""
        return self.word_continuation | self._next(self.word_continuation)

    def masks(self) -> np.ndarray:
        """Every place class, `PLACE_CLASS_NAMES` x positions."""
        out = np.zeros((len(PLACE_CLASS_NAMES), len(self.tokens)), dtype=bool)
        for row, name in enumerate(PLACE_CLASS_NAMES):
            out[row] = CLASSES[name].flags(self)  # type: ignore[misc]
        return out


@dataclass(frozen=True)
class TokenClass:
    """A class of token positions: what the explainer calls it, and the test. A class of tokens
    tests a token's text alone, so a caller can test each distinct token once; a class of places
    marks every position of excerpts laid end to end at once."""

    name: str  # the English the offline explainer writes, e.g. "closing parentheses"
    token_test: Callable[[str], bool] | None = None
    flags: Callable[[Places], np.ndarray] | None = None

    @property
    def positional(self) -> bool:
        """Depends on where the token sits, not only on its text."""
        return self.token_test is None


def _token_class(name: str, test: Callable[[str], bool]) -> TokenClass:
    return TokenClass(name, token_test=lru_cache(maxsize=65536)(test))


def _position_class(name: str, flags: Callable[[Places], np.ndarray]) -> TokenClass:
    return TokenClass(name, flags=flags)


def _line_kind(name: str, *first_words: str) -> TokenClass:
    """Tokens on a line that starts with one of the words ("def lines": def or async)."""
    words = frozenset(first_words)
    return _position_class(name, lambda places: places.line_starts_with(words))


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
        _position_class("bracketed tokens", lambda v: v.bracketed),
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


TOKEN_CLASS_NAMES = tuple(name for name, c in CLASSES.items() if not c.positional)
PLACE_CLASS_NAMES = tuple(name for name, c in CLASSES.items() if c.positional)


@lru_cache(maxsize=1 << 18)
def _token_class_row(token: str) -> bytes:
    """Which classes of tokens (in `TOKEN_CLASS_NAMES` order) the token is in, one byte each: one
    row per distinct token, so a unit's thousands of positions cost one lookup each."""
    return bytes(CLASSES[name].token_test(token) for name in TOKEN_CLASS_NAMES)  # type: ignore[misc]


_PLACES_READ: OrderedDict[tuple[str, ...], np.ndarray] = OrderedDict()  # excerpt -> place masks, oldest use first
_PLACES_KEPT = 1 << 16


def place_masks_of(excerpts: list[tuple[str, ...]]) -> list[np.ndarray]:
    """Every place class over each excerpt, `PLACE_CLASS_NAMES` x its tokens (read-only). Kept
    because the same windows (random and quantile ones above all) are read again for unit after
    unit; the excerpts not seen lately are read together, in one pass."""
    new = list(dict.fromkeys(e for e in excerpts if e not in _PLACES_READ))
    if new:
        masks = Places(new).masks()
        masks.flags.writeable = False
        cuts = np.cumsum([len(e) for e in new])[:-1]
        _PLACES_READ.update(zip(new, np.split(masks, cuts, axis=1)))
    found = [_PLACES_READ[e] for e in excerpts]
    for excerpt in excerpts:
        _PLACES_READ.move_to_end(excerpt)
    while len(_PLACES_READ) > _PLACES_KEPT:
        _PLACES_READ.popitem(last=False)
    return found


def class_masks(excerpts: list[tuple[str, ...]], vocab: list[str], token_ids: np.ndarray) -> np.ndarray:
    """Every class (in `CLASSES` order) over the excerpts' positions laid end to end, classes x
    positions; `token_ids` maps each position to its token in `vocab`."""
    rows = np.frombuffer(b"".join(map(_token_class_row, vocab)), dtype=bool).reshape(len(vocab), len(TOKEN_CLASS_NAMES))
    by_token = rows[token_ids].T
    by_place = (
        np.concatenate(place_masks_of(excerpts), axis=1) if excerpts else np.zeros((len(PLACE_CLASS_NAMES), 0), bool)
    )
    order = {name: k for k, name in enumerate(CLASSES)}
    masks = np.zeros((len(CLASSES), len(token_ids)), dtype=bool)
    masks[[order[n] for n in TOKEN_CLASS_NAMES]] = by_token
    masks[[order[n] for n in PLACE_CLASS_NAMES]] = by_place
    return masks
