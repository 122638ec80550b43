"""The explanation language: the English the offline explainer writes and the offline simulator reads.

An explanation says which tokens a unit fires on, how strongly, and where. The simulator reads it as
a person would, so explanations written by an LLM or by hand score for what they say; the explainer
writes in the same words, so what it means is what gets scored.

Grammar (words match in any case, singular or plural, British or American spelling, "upper-case" or
"upper case"; words outside the grammar are reported, see *Coverage*):

    explanation := clause { (";" | "." | new line) clause } ["(exact tokens)"]
    clause      := [lead] group { ("," | "and" | "or" | "as well as" | "/") group }
    lead        := filler such as "fires on", "this feature activates for", "mentions of"
    group       := [strength] target {target} {modifier}
    target      := QUOTE                  "God", “God”, `God` or 'God': that text as a token or phrase
                 | CLASS                  "numbers", "closing parentheses", "Python keywords", ...
                 | CLASS CLASS            "upper-case identifiers": tokens in both classes
                 | LITERAL-INTRO WORDS    "the word of", "the words error or warning"
                 | "any token" | "everything" | "tokens"      (with a modifier: "any token after `(`")
    modifier    := EXAMPLES WORDS         "such as" | "like" | "e.g." | "including" | ":" | "(" a list
                 | "after" TARGETS        also "following", "preceded by": the previous token matches
                 | "before" TARGETS       also "followed by": the next token matches
                 | PLACE-WORD CLASS       "inside a string", "in comments", "at the start of a line",
                                          "in a def line", "in code", "in prose", "inside brackets"
                 | NEGATION TARGETS       "not", "but not", "except", "excluding", "other than", "never"
                 | NEGATION modifier      "not after X", "except in comments": the group must not be there
                 | WINDOW "after" TARGETS "within 3 tokens after X", "up to 3 tokens after": X is among the
                                          N tokens before; WINDOW "before" likewise the N tokens after
                 | "when" TARGETS SPAN-IT "when X is among the 3 tokens before it", "in the previous 3
                                          tokens", "right before it"; "... after it", "in the next N tokens"
                 | "within N tokens"      right after an after/before modifier: widens it to N tokens
                 | FIRST-N                "among the first 8 tokens", "in the first 8 tokens (of the text)"
                 | REPEAT                 "when it repeats", "each time it repeats", "the second and later
                                          occurrences (of)": the same token came earlier in the text
                 | GRADED                 "more strongly each time (it repeats)", "increasingly": the repeat
                                          counts, a third more with each one up to the fourth occurrence
                 | "(case-sensitive)" | "(in any case)"
    strength    := "most strongly" 10 | "strongly" 7 | "moderately" 4 | "weakly" 2 (and synonyms)
    WORDS       := item { ("," | "or" | "and" | "/") item }      bare words, symbols or quotes
    N           := digits, or a number word from "two" to "twenty"

Meaning:
- Each target becomes an `Item` with the strength in force (10 at the start of every clause).
- A quote matches tokens whose text, leading whitespace aside, equals it (a quote that starts with
  whitespace must match it too); a phrase matches a run of tokens, its last token at full strength and
  the earlier ones at half. Another case matches at 0.8x, unless the clause says case-sensitive (never)
  or in any case (fully). With "(exact tokens)" at the end, as the offline explainer writes, quotes are
  exact token strings. Bare words after "the word" or in example lists match like quotes.
- Examples are instances: "colour words like red, blue" fires on the colour class and on "red" and "blue".
  After a generic class ("words such as ...", "names like ...") the examples replace the class.
- Modifiers in parentheses apply to the target just before them; outside parentheses, to every target
  of their group (the targets since the last strength word, negation or modifier), except that a
  modifier right after "any token" binds to it alone.
- Negation is scoped: it covers the targets that follow it up to the next ":", ";", strength word,
  "but", or the closing parenthesis of its group. A negated target forces 0 where it matches at
  least as precisely as what fires there (so "'the' but not 'The'" keeps " the" and drops " The").
- "when" starts the context of a SPAN-IT modifier: the targets after it (or else the group's last
  target) leave the group and become what must stand near the rest of it. A REPEAT modifier
  followed by "of" applies to the targets after it ("the second and later occurrences of X").
- Repeats count earlier tokens the item's target matches that read the same (leading whitespace and
  case aside, unless the quote is exact), so "numbers when they repeat" is the same number again.
- A strength word followed by a modifier ('"bank", especially after "river"') repeats the targets
  before it with that modifier at that strength.
- At each token the most specific item wins, then the strongest: a quote counts 2, a class 1, any
  token 0, plus 1 for a modifier (so '" self" (after whitespace)' beats '" self"' beats "words").

Coverage: `parse` reports the share of the explanation's content words the grammar understood, and
the phrases it did not. Filler words (fires, on, the, this feature, ...) count for neither side.
A word not understood that stands alone as a list item is read as itself, a loose quote (so
"references to rivers" still predicts " rivers", and "fires on God and Lord" " God" and " Lord"),
but it counts as not understood; longer unknown phrases ("in method definitions") are only reported.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache

import numpy as np

from autointerp.token_classes import CLASSES, PLACE_CLASS_NAMES, place_masks_of

FULL_STRENGTH = 10.0
CASE_FOLD_FACTOR = 0.8  # "god" for " God": probably meant, less certain
PHRASE_PREFIX_FACTOR = 0.5  # earlier tokens of a quoted multi-token phrase
EXACT_MARK = "(exact tokens)"
NEVER_FIRES = "never fires"

# ---- the vocabulary -------------------------------------------------------------------------------

STRENGTH_WORDS: dict[float, str] = {
    10.0: "most strongly, strongest, most, primarily, mainly, mostly, especially, particularly, chiefly, highest",
    7.0: "strongly, strong, highly, high",
    4.0: "moderately, moderate, somewhat, also, less, lesser, weaker, sometimes, partially",
    2.0: "weakly, weak, slightly, faintly, barely, occasionally, rarely, a little, low",
}
NEGATION_WORDS = "not, but not, never, except, excluding, other than, apart from, no, nor, without"
EXAMPLE_WORDS = "such as, like, e.g., eg, including, for example, for instance, namely, i.e., especially the words"
LITERAL_WORDS = (
    "the word, the words, the token, the tokens, the string, the strings, the term, the terms, the name, "
    "the letter, the letters, the character, the characters, the symbol, the symbols, the keyword, "
    "the keywords, the phrase, the words like"
)
ANY_WORDS = "any token, anything, everything, every token, all tokens, whatever token, whatever comes, the next token, the token"
AFTER_WORDS = "after, following, right after, directly after, immediately after, preceded by, that follows, that follow"
BEFORE_WORDS = "before, followed by, right before, directly before, immediately before, preceding"
PLACE_WORDS = "in, inside, within, at, in the middle of, as part of, part of"
CASE_WORDS = {
    "sensitive": "case-sensitive, case sensitive, exact case, matching case",
    "insensitive": "case-insensitive, in any case, any case, regardless of case, any capitalisation, ignoring case",
}
SILENT_WORDS = "never fires, never fire, does not fire, no clear pattern, dead"
# Conditions with a count N ("#" stands for a number: digits, or a number word from two to twenty).
WINDOW_AFTER_WORDS = (
    "within # tokens after, up to # tokens after, at most # tokens after, no more than # tokens after, "
    "# or fewer tokens after, in the # tokens after, among the # tokens after, within # tokens following, "
    "up to # tokens following, within # positions after, up to # positions after"
)
WINDOW_BEFORE_WORDS = (
    "within # tokens before, up to # tokens before, at most # tokens before, no more than # tokens before, "
    "# or fewer tokens before, within # positions before, up to # positions before"
)
# "... when "Y" is among the N tokens before it": the targets since "when" are the context.
CONTEXT_BEFORE_WORDS = (
    "among the # tokens before it, within the # tokens before it, within # tokens before it, "
    "in the # tokens before it, one of the # tokens before it, among the # tokens preceding it, "
    "within # tokens preceding it, among the previous # tokens, in the previous # tokens, "
    "within the previous # tokens, among the # previous tokens, among the # preceding tokens, "
    "in the # preceding tokens, within the # preceding tokens, among the last # tokens, "
    "in the last # tokens, up to # tokens before it, at most # tokens before it, up to # tokens earlier, "
    "within # tokens earlier, at most # tokens earlier"
)
CONTEXT_RIGHT_BEFORE_WORDS = (
    "right before it, just before it, immediately before it, directly before it, the token before it"
)
CONTEXT_AFTER_WORDS = (
    "among the # tokens after it, within the # tokens after it, within # tokens after it, "
    "in the # tokens after it, among the next # tokens, in the next # tokens, within the next # tokens, "
    "among the # following tokens, in the # following tokens, up to # tokens later, within # tokens later"
)
CONTEXT_RIGHT_AFTER_WORDS = "right after it, just after it, immediately after it, directly after it, the token after it"
WINDOW_WORDS = "within # tokens, up to # tokens, at most # tokens, no more than # tokens, within # positions"
FIRST_WORDS = (
    "among the first # tokens, in the first # tokens, within the first # tokens, among the first # positions, "
    "in the first # positions, within the first # positions"
)
FIRST_OF_WORDS = "of the text, of the input, of the sequence, of the window, of the document, of the excerpt, of the example, of the context"
REPEAT_WORDS = (
    "when it repeats, each time it repeats, every time it repeats, whenever it repeats, if it repeats, "
    "when it recurs, when repeated, if repeated, once repeated, on repeats, on its repeats, on repetitions, "
    "when it is repeated, second and later occurrences, second and subsequent occurrences, "
    "second or later occurrences, later occurrences, repeat occurrences, repeated occurrences, "
    "every occurrence after the first, each occurrence after the first, after its first occurrence, "
    "after the first occurrence, when it has appeared before, when it has occurred before, "
    "when it appeared earlier, when it has already appeared, when it already appeared, when seen before, "
    "when it has been seen before, when it appears again, each time it appears again"
)
# Graded: more strongly with each repeat ("reaches full strength on the fourth occurrence").
GRADED_WORDS = (
    "more strongly each time, more strongly every time, stronger each time, more each time, "
    "increasingly, increasingly strongly, more strongly with each repeat, more strongly with each repetition, "
    "stronger with each repeat, stronger with each repetition, more strongly with each occurrence, "
    "growing stronger each time, the more it repeats the stronger"
)
GRADED_REPEAT_WORDS = (
    "more strongly each time it repeats, more strongly every time it repeats, stronger each time it repeats, "
    "increasingly strongly each time it repeats, more strongly the more it repeats, "
    "more strongly on each repeat, more strongly on each later occurrence"
)
NUMBER_WORDS = [
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen",
    "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
]  # fmt: skip
REPEAT_STEPS = 3  # a graded repeat: the second occurrence at a third, the fourth and later in full
# Words that carry no content: they neither add to nor take from coverage.
FILLER = frozenset(
    """
    the a an this that these those it its unit neuron feature latent fire fires firing fired activate
    activates activated activating activation activations active detect detects detecting respond responds
    responding response on for of to with when where which who is are be being was appear appears
    appearing occur occurs occurring used use using found seen mention mentions mentioning reference
    references instance instances occurrence occurrences case cases example examples other others similar
    related various kind kinds sort sorts type types usually often typically generally mostly primarily
    token tokens text etc and or as well plus also but only very some any all both either each
    """.split()  # noqa: SIM905 (a word list reads better as text)
)

# Token classes by the names readers give them. The first name of each is the class's own name.
CLASS_NAMES: dict[str, str] = {
    "numbers": "number, numeral, numeric token, numeric literal, integer, digit, digits, numeric value, number literal",
    "upper-case words": "upper-case word, uppercase word, all-caps word, all caps word, capitalised constant, "
    "upper-case token, upper-case identifier, constant name, upper-case, uppercase, all caps, acronym",
    "capitalised words": "capitalised word, title-case word, word starting with a capital, word with a capital letter, "
    "proper noun, capitalised, capitalised name",
    "lower-case words": "lower-case word, lowercase word, lower-case, lowercase",
    "words": "word, English word, whole word",
    "whitespace": "whitespace, space, spaces, blank, whitespace token",
    "indentation": "indentation, indent, leading whitespace, leading spaces",
    "newlines": "newline, line break, new line, newline character, line ending",
    "opening brackets": "opening bracket, open bracket, left bracket, opening delimiter",
    "closing brackets": "closing bracket, close bracket, right bracket, closing delimiter",
    "opening parentheses": "opening parenthesis, opening parentheses, open parenthesis, open paren, "
    "opening paren, left parenthesis, left paren, opening round bracket",
    "closing parentheses": "closing parenthesis, closing parentheses, close parenthesis, close paren, "
    "closing paren, right parenthesis, right paren, closing round bracket",
    "opening square brackets": "opening square bracket, open square bracket, left square bracket",
    "closing square brackets": "closing square bracket, close square bracket, right square bracket",
    "opening curly braces": "opening curly brace, opening brace, open brace, left brace, opening curly bracket",
    "closing curly braces": "closing curly brace, closing brace, close brace, right brace, closing curly bracket",
    "brackets": "bracket, parenthesis, parentheses, paren, parens, brace, braces, curly brace, square bracket, "
    "delimiter",
    "quotes": "quote, quotation mark, quote character, quote mark, string delimiter, quoting character",
    "double quotes": "double quote, double quotation mark",
    "single quotes": "single quote, apostrophe",
    "operators": "operator, operator symbol, binary operator",
    "comparison operators": "comparison operator, comparison, comparison symbol, relational operator",
    "arithmetic operators": "arithmetic operator, math operator, mathematical operator, arithmetic symbol",
    "assignment operators": "assignment operator, assignment, equals sign, equal sign",
    "punctuation": "punctuation, punctuation mark, punctuation character",
    "commas": "comma",
    "periods": "period, full stop, dot",
    "colons": "colon",
    "underscores": "underscore",
    "Python keywords": "python keyword, keyword, reserved word, language keyword, python reserved word",
    "block-starting keywords": "block-starting keyword, block keyword, python keywords that start a block, "
    "keywords that start a block, keywords that open a block, control-flow keyword, control flow keyword, "
    "compound statement keyword, block-opening keyword",
    "builtins": "builtin, built-in, built-in function, builtin function, built-in name, builtin name, "
    "built-in type, builtin type",
    "exception names": "exception name, exception, exception class, error class, error name",
    "identifiers": "identifier, variable name, variable, name, attribute name, function name, method name",
    "dunder names": "dunder name, dunder, dunder method, magic method, special method, double-underscore name",
    "non-ASCII characters": "non-ASCII character, non-ascii, non-ascii text, unicode character, accented letter, "
    "accented character, accented text, non-English character, byte fragment",
    "colour words": "colour word, colour, colour name",
    "month names": "month name, month",
    "weekday names": "weekday name, weekday, day of the week, day name",
    "number words": "number word, spelled-out number, written-out number",
    "articles": "article, determiner",
    "prepositions": "preposition",
    "conjunctions": "conjunction",
    "pronouns": "pronoun",
    "strings": "string, string literal, quoted string, text inside quotes, string content",
    "docstrings": "docstring, documentation string",
    "comments": "comment, code comment, python comment",
    "HTML tags": "HTML tag, XML tag, tag, markup, markup tag, HTML, XML, HTML element",
    "URLs and file paths": "URL, URLs and file paths, web address, link, file path, path, file name, filename, "
    "module path",
    "prose": "prose, English prose, natural language, English text, documentation, documentation text, "
    "English, plain text",
    "code": "code, source code, Python code, program code, code line",
    "the start of a line": "start of a line, start of the line, beginning of a line, beginning of the line, "
    "line start, start of line, first token of a line, first token on a line, first word of a line",
    "the end of a line": "end of a line, end of the line, line end, end of line, last token of a line",
    "bracketed tokens": "bracketed token, brackets' insides, parenthesised token, function argument, "
    "argument list, call argument",
    "word pieces": "word piece, subword, sub-word, word fragment, part of a word, part of an identifier, "
    "piece of a word, piece of an identifier, word pieces inside identifiers, identifier piece",
    "word continuations": "word continuation, suffix, word ending, middle of a word, end of a word, "
    "middle or end of a word, "
    "continuation piece",
    "def lines": "def line, def statement, function definition, function signature",
    "class lines": "class line, class statement, class definition",
    "import lines": "import line, import statement",
    "return lines": "return line, return statement",
    "if lines": "if line, if statement, conditional",
    "for lines": "for line, for loop, for statement",
    "while lines": "while line, while loop",
    "with lines": "with line, with statement",
    "assert lines": "assert line, assert statement, assertion",
    "raise lines": "raise line, raise statement",
}
# Classes so broad that examples after them ("words such as error or warning") say what is meant.
GENERIC_CLASSES = frozenset({"words", "identifiers"})
# How a class that is about a place reads after "any token" in the explainer's own text.
PLACE_PHRASES: dict[str, str] = {
    "strings": "inside a string",
    "docstrings": "inside a docstring",
    "comments": "in comments",
    "HTML tags": "inside HTML tags",
    "URLs and file paths": "in URLs and file paths",
    "prose": "in prose",
    "code": "in code",
    "the start of a line": "at the start of a line",
    "the end of a line": "at the end of a line",
    "bracketed tokens": "inside brackets",
}
for _key in CLASSES:
    if _key.endswith(" lines"):
        PLACE_PHRASES[_key] = f"in a {_key.split()[0]} line"
_PLACE_CLASS = {"brackets": "bracketed tokens", "parentheses": "bracketed tokens", "a string": "strings"}


# ---- the parsed form ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    """A quoted or named token or phrase. `exact`: an exact token string (only identical tokens match)."""

    text: str
    exact: bool = False
    case: str = "loose"  # loose: other case at 0.8x; sensitive: same case only; insensitive: any case fully
    rank = 2


@dataclass(frozen=True)
class ClassOf:
    """Tokens in every one of the named classes (usually one)."""

    names: tuple[str, ...]
    rank = 1


@dataclass(frozen=True)
class AnyToken:
    rank = 0


@dataclass(frozen=True)
class OneOf:
    """Any of several targets; what "after '(' or '['" names."""

    options: tuple[Literal | ClassOf | AnyToken, ...]
    rank = 1


Target = Literal | ClassOf | AnyToken | OneOf


@dataclass(frozen=True)
class Condition:
    """Where the target must be: `at` a class of positions; `after` / `before` another target, which is
    among the `span` tokens before / after it; `first`: among the first `span` tokens of the text
    (the target is AnyToken); `repeat`: a token the item's target matches, with the same text
    (leading whitespace and case aside, unless the target is an exact quote), came earlier, the
    degree rising with each repeat when `graded` (the target is the item's own)."""

    where: str  # "at" | "after" | "before" | "first" | "repeat"
    target: Target
    negated: bool = False
    span: int = 1
    graded: bool = False


@dataclass(frozen=True)
class Item:
    """One thing an explanation says; `excluded` items force 0 where they match."""

    target: Target
    strength: float
    conditions: tuple[Condition, ...] = ()
    excluded: bool = False

    @property
    def specificity(self) -> int:
        return self.target.rank + (1 if self.conditions else 0)


@dataclass(frozen=True)
class Parsed:
    items: tuple[Item, ...]
    coverage: float  # share of content words understood, 0-1
    unknown: tuple[str, ...]  # the words not understood, in order


# ---- lexing ---------------------------------------------------------------------------------------

_LEX = re.compile(
    r'"(?P<json>(?:[^"\\\n]|\\.)*)"'
    r"|\u201c(?P<curly>[^\u201d\n]*)\u201d"
    r"|`(?P<tick>[^`\n]+)`"
    r"|(?<!\w)'(?P<single>[^'\n]+?)'(?!\w)"
    r"|(?P<word>e\.g\.|i\.e\.|etc\.|\d+(?:\.\d+)?|\w+(?:['\u2019-]\w+)*)"
    r"|(?P<newline>\n)"
    r"|(?P<punct>[,;()])"
    r"|(?P<sym>[^\w\s,;()\"`\u201c\u201d]+)"
)


@dataclass
class Lexeme:
    kind: str  # quote | word | sep | open | close | end | colon | sym
    text: str
    glued: bool = False  # no whitespace before it
    words: tuple[str, ...] = ()  # normalised words (word lexemes)
    content: bool = False  # counts for coverage
    understood: bool = False


def _normalise(word: str) -> tuple[str, ...]:
    parts = re.split(r"[-\u2019']", word.lower()) if "-" in word else [word.lower()]
    out = []
    for part in parts:
        part = part.replace("capitaliz", "capitalis").replace("color", "colour")
        if len(part) > 4 and part.endswith("ies"):
            part = part[:-3] + "y"
        elif len(part) > 4 and part.endswith(("ches", "shes", "sses", "xes")):
            part = part[:-2]
        elif len(part) > 3 and part.endswith("s") and not part.endswith(("ss", "us", "is")):
            part = part[:-1]
        if part:
            out.append(part)
    return tuple(out)


def _lex(text: str) -> list[Lexeme]:
    lexemes: list[Lexeme] = []
    previous_end = -1
    for match in _LEX.finditer(text):
        glued = match.start() == previous_end
        previous_end = match.end()
        kind = match.lastgroup or ""
        raw = match.group(0)
        if kind in ("json", "curly", "tick", "single"):
            content = _quote_content(match)
            if content:
                lexemes.append(Lexeme("quote", content, glued, content=True))
            continue
        if kind == "word":
            words = _normalise(raw)
            lexemes.append(Lexeme("word", raw, glued, words, content=not set(words) <= FILLER))
        elif kind == "newline":
            lexemes.append(Lexeme("end", raw))
        elif kind == "punct":
            lexemes.append(Lexeme({"(": "open", ")": "close", ",": "sep", ";": "end"}[raw], raw, glued))
        elif raw in (".", "...") and (match.end() == len(text) or text[match.end()].isspace()):
            lexemes.append(Lexeme("end", raw))
        elif raw == ":":
            lexemes.append(Lexeme("colon", raw, glued))
        elif raw in ("/", "&"):
            lexemes.append(Lexeme("sep", raw, glued))
        elif raw in ("-", "\u2013", "\u2014", "--"):
            continue
        else:
            lexemes.append(Lexeme("sym", raw, glued, content=True))
    return lexemes


def _quote_content(match: re.Match[str]) -> str:
    raw = match.group("json")
    if raw is not None:
        try:
            return json.loads(f'"{raw}"')
        except json.JSONDecodeError:
            return raw
    return match.group("curly") or match.group("tick") or match.group("single") or ""


# ---- phrases --------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _phrases() -> dict[tuple[str, ...], tuple[str, object]]:
    """Normalised word sequence -> (meaning, value)."""
    table: dict[tuple[str, ...], tuple[str, object]] = {}

    def add(names: Iterable[str], meaning: str, value: object = None) -> None:
        for name in names:
            key = tuple(w for n, word in enumerate(name.split()) for w in _phrase_words(_normalise(word), first=n == 0))
            table.setdefault(key, (meaning, value))

    def split(words: str) -> list[str]:
        return [w.strip() for w in words.split(",") if w.strip()]

    add(split(SILENT_WORDS), "silent")
    for level, words in STRENGTH_WORDS.items():
        add(split(words), "strength", level)
    add(split(NEGATION_WORDS), "negate")
    add(split(EXAMPLE_WORDS), "examples")
    add(split(LITERAL_WORDS), "literal")
    add(split(ANY_WORDS), "any")
    add(split(AFTER_WORDS), "after")
    add(split(BEFORE_WORDS), "before")
    add(split(PLACE_WORDS), "place")
    for mode, words in CASE_WORDS.items():
        add(split(words), "case", mode)
    add(split(WINDOW_AFTER_WORDS), "window after")
    add(split(WINDOW_BEFORE_WORDS), "window before")
    add(split(CONTEXT_BEFORE_WORDS), "context before")
    add(split(CONTEXT_RIGHT_BEFORE_WORDS), "context before", 1)
    add(split(CONTEXT_AFTER_WORDS), "context after")
    add(split(CONTEXT_RIGHT_AFTER_WORDS), "context after", 1)
    add(split(WINDOW_WORDS), "window")
    add([f"{first} {of}" for first in split(FIRST_WORDS) for of in ["", *split(FIRST_OF_WORDS)]], "first")
    repeats = [form for phrase in split(REPEAT_WORDS) for form in (phrase, _plural(phrase))]
    add(repeats, "repeat", False)
    add([f"{repeat} of" for repeat in repeats], "repeat of", False)
    add([form for phrase in split(GRADED_REPEAT_WORDS) for form in (phrase, _plural(phrase))], "repeat", True)
    add(split(GRADED_WORDS), "graded")
    for key, names in CLASS_NAMES.items():
        add([key, *split(names)], "class", key)
    return table


_MAX_PHRASE = 8
_PLURAL = {"it": "they", "its": "their", "is": "are", "has": "have"}


def _plural(phrase: str) -> str:
    """A phrase said of several tokens: "when they repeat" (verbs are normalised anyway)."""
    return " ".join(_PLURAL.get(word, word) for word in phrase.split())


_ARTICLES = frozenset({"a", "an", "the", "each", "every"})


def _phrase_words(words: tuple[str, ...], *, first: bool) -> tuple[str, ...]:
    """Articles inside a phrase do not matter ("start of a line", "start of each line"); a leading
    one does ("the word of" names a word, "every token" is not "token")."""
    return tuple(w for n, w in enumerate(words) if w not in _ARTICLES or first and n == 0)


def _phrase_at(lexemes: list[Lexeme], i: int) -> tuple[str, object, int] | None:
    """(meaning, value, lexemes used) of the longest phrase starting at i. A number in the phrase
    stands for the "#" of its entry and is the value."""
    table = _phrases()
    words: list[str] = []
    bounds: list[int] = []
    numbers: list[int] = []
    j = i
    while j < len(lexemes) and lexemes[j].kind == "word" and len(words) < _MAX_PHRASE:
        number = _number(lexemes[j].text)
        if number is not None:
            words.append("#")
            numbers.append(number)
        else:
            words.extend(_phrase_words(lexemes[j].words, first=j == i))
        bounds.append(len(words))
        j += 1
    for count in range(len(bounds), 0, -1):
        key = tuple(words[: bounds[count - 1]])
        if key in table:
            meaning, value = table[key]
            if "#" in key:
                value = numbers[0]
            return meaning, value, count
    return None


def _number(word: str) -> int | None:
    """A count written in digits or words ("3", "three"), at least 1."""
    if word.isascii() and word.isdigit() and int(word) >= 1:
        return int(word)
    lowered = word.lower()
    return NUMBER_WORDS.index(lowered) + 2 if lowered in NUMBER_WORDS else None


# ---- parsing --------------------------------------------------------------------------------------


@dataclass
class _Draft:
    target: Target
    strength: float
    excluded: bool
    conditions: list[Condition] = field(default_factory=list)


class _ClauseParser:
    """Reads one clause's lexemes into items (see the grammar in the module docstring)."""

    def __init__(self, lexemes: list[Lexeme], exact: bool):
        self.lex = lexemes
        self.exact = exact
        self.i = 0
        self.strength = FULL_STRENGTH
        self.negated = False
        self.negation_depth = 0
        self.depth = 0
        self.case = "loose"
        self.drafts: list[_Draft] = []
        self.group_start = 0  # index in drafts where the group modifiers apply from
        self.previous_group: tuple[int, int] = (0, 0)
        self.group_closed = False
        self.silent = False
        self.class_end = -1  # lexeme index just after the last class phrase
        self.when_at = -1  # drafts index at the last "when": the targets after it may be a context
        self.when_word: Lexeme | None = None
        self.pending: list[Condition] = []  # "the second and later occurrences of": for targets to come
        self.amendable: list[_Draft] = []  # the drafts the last condition went to ("..., within 3 tokens")

    # -- helpers

    def _peek(self, offset: int = 0) -> Lexeme | None:
        j = self.i + offset
        return self.lex[j] if j < len(self.lex) else None

    def _take(self, count: int = 1) -> None:
        for lexeme in self.lex[self.i : self.i + count]:
            lexeme.understood = True
        self.i += count

    def _new_group(self) -> None:
        if len(self.drafts) > self.group_start:
            self.previous_group = (self.group_start, len(self.drafts))
        self.group_start = len(self.drafts)
        self.group_closed = False
        self.pending = []

    def _add(self, target: Target) -> None:
        if self.group_closed:
            self._new_group()
        draft = _Draft(target, self.strength, self.negated and self.depth >= self.negation_depth)
        draft.conditions.extend(_fitted(c, draft) for c in self.pending)
        self.drafts.append(draft)
        if self.pending:
            self.amendable = self.drafts[self.group_start :]

    def _literal(self, text: str) -> Literal:
        return Literal(text, exact=self.exact, case=self.case)

    # -- the clause

    def parse(self) -> list[_Draft]:
        while self.i < len(self.lex):
            self._step()
        return self.drafts

    def _step(self) -> None:
        lexeme = self.lex[self.i]
        if lexeme.kind == "quote":
            self._take()
            self._add(self._literal(lexeme.text))
            return
        if lexeme.kind == "sep":
            self._take()
            return
        if lexeme.kind == "colon":  # "...: "if", "for"": what follows is named outright
            self._take()
            self.negated = False
            self._new_group()
            if self._phrase_at_cursor() is None:
                self._literal_list()
            return
        if lexeme.kind == "open":
            self._take()
            self.depth += 1
            following = self._phrase_at_cursor()
            if following is None or following[0] in ("literal", "class") and self._is_list_item(self.i):
                self._examples()
            return
        if lexeme.kind == "close":
            self._take()
            if self.negated and self.depth <= self.negation_depth:
                self.negated = False
            self.depth = max(0, self.depth - 1)
            return
        phrase = self._phrase_at_cursor()
        if phrase is None:
            if lexeme.text.lower() in _WHEN_WORDS:
                self.when_at, self.when_word = len(self.drafts), lexeme
            if lexeme.text.lower() == "but":  # "not X but Y": the negation is over
                self.negated = False
            elif lexeme.content and self._stands_alone():  # "fires on God and Lord": the words themselves
                self._add(Literal(lexeme.text, case=self.case))
                if lexeme.kind == "word" and len(lexeme.text) > 3 and re.search(r"[^su]s$", lexeme.text):
                    self._add(Literal(lexeme.text[:-1], case=self.case))  # "rivers": " river" too
            self.i += 1
            return
        meaning, value, count = phrase
        start = self.i
        self._take(count)
        self._apply(meaning, value, start)

    def _stands_alone(self) -> bool:
        """An unknown word that is a list item of its own (not part of a longer unknown phrase such
        as "in method definitions") is taken to name itself."""
        previous = self.lex[self.i - 1] if self.i else None
        after_unknown = previous is not None and previous.content and not previous.understood
        return not after_unknown and self._is_list_item(self.i)

    def _phrase_at_cursor(self) -> tuple[str, object, int] | None:
        return _phrase_at(self.lex, self.i)

    def _apply(self, meaning: str, value: object, start: int) -> None:
        if meaning == "silent":
            self.silent = True
        elif meaning == "strength":
            self.strength = float(value)  # type: ignore[arg-type]
            self.negated = False
            self._new_group()
        elif meaning == "negate":
            self.negated = True
            self.negation_depth = self.depth
            self._new_group()
            if self._phrase_at_cursor() is None:  # "numbers other than 0", "not if, for"
                self._literal_list()
        elif meaning == "case":
            self.case = str(value)
            for draft in self.drafts:
                if isinstance(draft.target, Literal) and not draft.target.exact:
                    draft.target = replace(draft.target, case=self.case)
        elif meaning == "class":
            self._class(str(value), start)
        elif meaning == "any":
            self._add(AnyToken())
        elif meaning == "literal":
            following = self._phrase_at_cursor()
            if following is not None and following[0] in ("after", "before"):  # "the token after X"
                self._add(AnyToken())
            else:
                self._literal_list()
        elif meaning == "examples":
            self._examples()
        elif meaning in ("after", "before", "place"):
            self._condition(meaning)
        elif meaning in ("window after", "window before"):
            self._condition(meaning.split()[1], span=int(value))  # type: ignore[call-overload]
        elif meaning in ("context before", "context after"):
            self._context("after" if meaning == "context before" else "before", int(value))  # type: ignore[call-overload]
        elif meaning == "first":
            self._attach(Condition("first", AnyToken(), span=int(value)))  # type: ignore[call-overload]
        elif meaning == "repeat":
            self._attach(Condition("repeat", AnyToken(), graded=bool(value)))
        elif meaning == "repeat of":
            self._new_group()
            self.pending = [Condition("repeat", AnyToken(), negated=self.negated, graded=bool(value))]
            self.negated = False
        elif meaning == "graded":
            self._amend("repeat", graded=True)
        elif meaning == "window" and not self._amend("after", span=value):
            self._amend("before", span=value)

    def _class(self, name: str, start: int) -> None:
        """A class target; right after another class ("upper-case identifiers") it narrows that one."""
        last = self.drafts[-1] if self.drafts else None
        if last is not None and isinstance(last.target, ClassOf) and start == self.class_end and not self.group_closed:
            last.target = ClassOf(tuple(dict.fromkeys((*last.target.names, name))))
        else:
            self._add(ClassOf((name,)))
        self.class_end = self.i

    def _is_list_item(self, j: int) -> bool:
        """A bare item at j followed by a list separator, a closing parenthesis or the end."""
        k = j + 1
        while k < len(self.lex) and self.lex[k].glued and self.lex[k].kind in ("word", "sym"):
            k += 1
        return k >= len(self.lex) or self.lex[k].kind in ("sep", "close", "end") or self._is_conjunction(k)

    def _is_conjunction(self, k: int) -> bool:
        return k < len(self.lex) and self.lex[k].kind == "word" and self.lex[k].text.lower() in ("or", "and")

    def _bare_item(self) -> str | None:
        """One bare item at the cursor: a quote, or a glued run of words and symbols."""
        lexeme = self._peek()
        if lexeme is None or lexeme.kind not in ("quote", "word", "sym"):
            return None
        if lexeme.kind == "quote":
            self._take()
            return lexeme.text
        text = lexeme.text
        self._take()
        while (nxt := self._peek()) is not None and nxt.glued and nxt.kind in ("word", "sym"):
            text += nxt.text
            self._take()
        return text

    def _read_list(self) -> list[str]:
        """Bare items separated by commas, "or", "and", "/": the first always, later ones while
        they read as items (a quote, or a word followed by another separator or the end)."""
        items: list[str] = []
        item = self._bare_item()
        while item is not None:
            items.append(item)
            item = self._bare_item() if self._list_continues() else None
        return items

    def _list_continues(self) -> bool:
        """Whether a separator and another item follow; if so, step over the separator."""
        j = self.i
        if j < len(self.lex) and self.lex[j].kind == "sep":
            j += 1
        if self._is_conjunction(j):
            j += 1
        if j == self.i or j >= len(self.lex):
            return False
        following = self.lex[j]
        if following.kind == "quote" or following.kind in ("word", "sym") and self._is_list_item(j):
            self._take(j - self.i)
            return True
        return False

    def _literal_list(self) -> None:
        for text in self._read_list():
            self._add(self._literal(text))

    def _examples(self) -> None:
        items = self._read_list()
        if not items:
            return
        head = self.drafts[-1] if self.drafts else None
        if head is not None and isinstance(head.target, ClassOf) and set(head.target.names) <= GENERIC_CLASSES:
            self.drafts.pop()  # "words such as error or warning": the examples are what is meant
        strength = head.strength if head is not None else self.strength
        excluded = head.excluded if head is not None else False
        for text in items:
            self.drafts.append(_Draft(self._literal(text), strength, excluded, list(head.conditions) if head else []))

    def _condition_target(self, where: str) -> Target | None:
        """The target of a modifier: a class (possibly after "a", "the"), a quote, or bare words."""
        options: list[Literal | ClassOf | AnyToken] = []
        while True:
            while (
                (lexeme := self._peek()) is not None and lexeme.kind == "word" and set(lexeme.words) <= FILLER - {"or"}
            ):
                if self._phrase_at_cursor() is not None:
                    break
                self.i += 1
            lexeme = self._peek()
            if lexeme is None:
                break
            phrase = self._phrase_at_cursor()
            if phrase is not None and phrase[0] == "class":
                self._take(phrase[2])
                name = str(phrase[1])
                options.append(ClassOf((_PLACE_CLASS.get(name, name) if where == "at" else name,)))
            elif phrase is not None and phrase[0] == "any":
                self._take(phrase[2])
                options.append(AnyToken())
            elif lexeme.kind == "quote" or (where != "at" and phrase is None and lexeme.kind in ("word", "sym")):
                text = self._bare_item()
                if text is None:
                    break
                options.append(self._literal(text))
            else:
                break
            if self._peek() is not None and self.lex[self.i].text.lower() == "or":
                self.i += 1
                continue
            break
        if not options:
            return None
        return options[0] if len(options) == 1 else OneOf(tuple(options))

    def _condition(self, where: str, span: int = 1) -> None:
        target = self._condition_target("at" if where == "place" else where)
        if target is not None:
            self._attach(Condition("at" if where == "place" else where, target, span=span))

    def _context(self, where: str, span: int) -> None:
        """The context of 'X when "Y" is among the N tokens before it': the targets since "when" (or
        the last one) leave the group and become what must stand near the rest of it."""
        start = self.when_at if self.group_start < self.when_at < len(self.drafts) else len(self.drafts) - 1
        if start <= self.group_start:
            return
        if start == self.when_at and self.when_word is not None:
            self.when_word.understood = True  # "if" is a content word: here it was understood
        context = [d.target for d in self.drafts[start:]]
        del self.drafts[start:]
        options = tuple(o for t in context for o in (t.options if isinstance(t, OneOf) else (t,)))
        target = context[0] if len(context) == 1 else OneOf(options)
        self._attach(Condition(where, target, span=span))

    def _attach(self, condition: Condition) -> None:
        """Put a condition on the targets it modifies (see *Meaning* in the module docstring)."""
        if self.negated and len(self.drafts) == self.group_start:
            # "not after X": the group before the negation must not be there
            self.negated = False
            start, end = self.previous_group
            self._condition_on(self.drafts[start:end], replace(condition, negated=True))
            return
        if len(self.drafts) == self.group_start:
            if self.previous_group[1] > self.previous_group[0]:  # "..., especially after X"
                start, end = self.previous_group
                for draft in self.drafts[start:end]:
                    self.drafts.append(_Draft(draft.target, self.strength, draft.excluded, list(draft.conditions)))
            else:
                self.drafts.append(_Draft(AnyToken(), self.strength, self.negated))
            self._condition_on(self.drafts[self.group_start :], condition)
            self.group_closed = True
            return
        if self.depth > 0 or isinstance(self.drafts[-1].target, AnyToken):
            self._condition_on(self.drafts[-1:], condition)  # "(after X)", "any token after X": the last target
        else:
            self._condition_on(self.drafts[self.group_start :], condition)
            self.group_closed = True

    def _condition_on(self, drafts: list[_Draft], condition: Condition) -> None:
        for draft in drafts:
            draft.conditions.append(_fitted(condition, draft))
        self.amendable = drafts

    def _amend(self, where: str, **changes: object) -> bool:
        """Change the last condition put on targets ("..., more strongly each time"), if it is a `where`."""
        drafts = [d for d in self.amendable if d.conditions and d.conditions[-1].where == where]
        for draft in drafts:
            draft.conditions[-1] = replace(draft.conditions[-1], **changes)  # type: ignore[arg-type]
        return bool(drafts)


_WHEN_WORDS = frozenset({"when", "whenever", "if", "where", "while", "with"})


def _fitted(condition: Condition, draft: _Draft) -> Condition:
    """A repeat condition is about the draft's own target."""
    return replace(condition, target=draft.target) if condition.where == "repeat" else condition


def _clauses(lexemes: list[Lexeme]) -> list[list[Lexeme]]:
    clauses: list[list[Lexeme]] = [[]]
    depth = 0
    for lexeme in lexemes:
        depth += {"open": 1, "close": -1}.get(lexeme.kind, 0)
        if lexeme.kind == "end" and depth <= 0:
            clauses.append([])
            depth = 0
        else:
            clauses[-1].append(lexeme)
    return [c for c in clauses if c]


@lru_cache(maxsize=8192)
def parse(text: str) -> Parsed:
    """Every item the explanation names, with how much of it was understood."""
    body = text.strip()
    exact = body.endswith(EXACT_MARK)
    if exact:
        body = body[: -len(EXACT_MARK)]
    lexemes = _lex(body)
    items: list[Item] = []
    silent = False
    for clause in _clauses(lexemes):
        parser = _ClauseParser(clause, exact)
        drafts = parser.parse()
        silent = silent or parser.silent
        items.extend(Item(d.target, d.strength, tuple(d.conditions), d.excluded) for d in drafts)
    content = [lx for lx in lexemes if lx.content]
    understood = sum(1 for lx in content if lx.understood)
    if content:
        coverage = understood / len(content)
    else:
        coverage = 1.0 if silent else 0.0
    unknown = tuple(lx.text for lx in content if not lx.understood)
    return Parsed(tuple(items), coverage, unknown)


# ---- prediction -----------------------------------------------------------------------------------


def predict(text: str, tokens: list[str]) -> list[float]:
    """Predicted 0-10 activation per token from the explanation's items."""
    return predict_items(parse(text).items, tokens)


def predict_many(text: str, excerpts: list[list[str]]) -> list[list[float]]:
    """`predict` for many excerpts at once: the same numbers, one pass over them all (what a
    simulator scoring a unit's hundred excerpts wants)."""
    return predict_batch(parse(text).items, excerpts)


def predict_items(items: Iterable[Item], tokens: list[str]) -> list[float]:
    return predict_batch(items, [tokens])[0]


def predict_batch(items: Iterable[Item], excerpts: list[list[str]]) -> list[list[float]]:
    """The most specific matching item wins, then the strongest; excluded items force 0 where they
    match at least as precisely as the winner. Each excerpt is read on its own (no condition looks
    across two), but they are laid end to end so every item costs a few array operations."""
    batch = _Batch.of(excerpts)
    n = len(batch.tokens)
    best_rank = np.full(n, -1)  # the winner so far per token: (specificity, value, quality)
    best_value = np.zeros(n)
    best_quality = np.zeros(n)
    exclusions: list[tuple[int, np.ndarray]] = []
    for item in items:
        quality = _item_quality(item, batch)
        if item.excluded:
            exclusions.append((item.specificity, quality))
            continue
        value = item.strength * quality
        rank = item.specificity
        wins = (quality > 0) & ((rank > best_rank) | ((rank == best_rank) & (value > best_value)))
        best_rank[wins] = rank
        best_value[wins] = value[wins]
        best_quality[wins] = quality[wins]
    for rank, quality in exclusions:
        beats = (rank > best_rank) | ((rank == best_rank) & (quality >= best_quality))
        best_value[(quality > 0) & beats] = 0.0
    values, cuts = best_value.tolist(), [0, *batch.starts[1:].tolist(), n]
    return [values[a:b] for a, b in itertools.pairwise(cuts)]


@dataclass
class _Batch:
    """Excerpts laid end to end: their tokens, where each starts, and a memo of target matches."""

    excerpts: list[tuple[str, ...]]
    tokens: list[str]
    starts: np.ndarray  # first position of each excerpt
    memo: dict[tuple[Target, bool], np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, excerpts: list[list[str]]) -> _Batch:
        lengths = np.array([len(e) for e in excerpts], dtype=np.int64)
        starts = (
            np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64) if len(excerpts) else np.zeros(0, np.int64)
        )
        tokens = [t for e in excerpts for t in e]
        return cls([tuple(e) for e in excerpts], tokens, starts)

    @cached_property
    def lengths(self) -> np.ndarray:
        return np.diff(np.append(self.starts, len(self.tokens)))

    @cached_property
    def offset(self) -> np.ndarray:
        """Each position's index within its excerpt."""
        return np.arange(len(self.tokens)) - np.repeat(self.starts, self.lengths)

    @cached_property
    def remaining(self) -> np.ndarray:
        """Tokens after each position in its excerpt."""
        return np.repeat(self.lengths, self.lengths) - 1 - self.offset

    @cached_property
    def vocabulary(self) -> tuple[dict[str, int], np.ndarray]:
        """Each distinct token string's number, and the number of the token at each position."""
        index = {token: i for i, token in enumerate(dict.fromkeys(self.tokens))}
        return index, np.fromiter(map(index.__getitem__, self.tokens), np.intp, len(self.tokens))

    def where(self, token: str) -> np.ndarray:
        """Positions holding exactly this token string."""
        index, ids = self.vocabulary
        return ids == index[token] if token in index else np.zeros(len(self.tokens), dtype=bool)

    def class_mask(self, name: str) -> np.ndarray:
        token_class = CLASSES[name]
        if token_class.token_test is not None:  # each distinct token tested once
            index, ids = self.vocabulary
            return np.fromiter(map(token_class.token_test, index), bool, len(index))[ids]
        return self.places[PLACE_CLASS_NAMES.index(name)]

    @cached_property
    def places(self) -> np.ndarray:
        """Every place class over every position, `PLACE_CLASS_NAMES` x positions."""
        if not self.excerpts:
            return np.zeros((len(PLACE_CLASS_NAMES), 0), dtype=bool)
        return np.concatenate(place_masks_of(self.excerpts), axis=1)


def _item_quality(item: Item, batch: _Batch) -> np.ndarray:
    """How well the item's target and conditions match each token, 0 (not at all) to 1."""
    quality = _target_quality(item.target, batch, partial=True)
    for condition in item.conditions:
        degree = _condition_degree(condition, batch)
        quality = np.where(degree == 0, quality, 0.0) if condition.negated else quality * degree
    return quality


def _condition_degree(condition: Condition, batch: _Batch) -> np.ndarray:
    """How far the condition holds at each token: 1 or 0, or a step of a graded repeat. No
    condition looks past the token's own excerpt."""
    if condition.where == "first":
        return (batch.offset < condition.span).astype(float)
    hits = _target_quality(condition.target, batch, partial=False) > 0
    if condition.where == "repeat":
        return np.concatenate(
            [_repeat_degree(condition, hits[start : start + len(e)], e) for start, e in zip(batch.starts.tolist(), batch.excerpts)]
        ) if batch.excerpts else np.zeros(0)  # fmt: skip
    if condition.where in ("after", "before"):
        n, held = len(hits), np.zeros(len(hits), dtype=bool)
        room = batch.offset if condition.where == "after" else batch.remaining  # tokens of the excerpt on that side
        for distance in range(1, min(condition.span, n) + 1):
            if condition.where == "after":
                held[distance:] |= hits[:-distance] & (room[distance:] >= distance)
            else:
                held[:-distance] |= hits[distance:] & (room[:-distance] >= distance)
        return held.astype(float)
    return hits.astype(float)


def _repeat_degree(condition: Condition, hits: np.ndarray, tokens: tuple[str, ...]) -> np.ndarray:
    """Per token: whether (graded: how often, up to REPEAT_STEPS) the same text came earlier where
    the target matched."""
    exact = isinstance(condition.target, Literal) and condition.target.exact
    seen: dict[str, int] = {}
    out = []
    for token, hit in zip(tokens, hits.tolist()):
        key = token if exact else token.strip().casefold()
        earlier = seen.get(key, 0)
        out.append(min(earlier, REPEAT_STEPS) / REPEAT_STEPS if condition.graded else float(earlier > 0))
        if hit:
            seen[key] = earlier + 1
    return np.array(out, dtype=float)


def _target_quality(target: Target, batch: _Batch, *, partial: bool) -> np.ndarray:
    """Per token, 0-1; memoised (callers never write to it)."""
    key = (target, partial)
    if key not in batch.memo:
        batch.memo[key] = _compute_quality(target, batch, partial)
    return batch.memo[key]


def _compute_quality(target: Target, batch: _Batch, partial: bool) -> np.ndarray:
    n = len(batch.tokens)
    if isinstance(target, AnyToken):
        return np.ones(n)
    if isinstance(target, ClassOf):
        return np.logical_and.reduce([batch.class_mask(name) for name in target.names]).astype(float)
    if isinstance(target, OneOf):
        return np.max([_target_quality(option, batch, partial=partial) for option in target.options], axis=0)
    quality = np.zeros(n)
    if target.exact or not target.text.strip():  # exact tokens, or whitespace such as "\n": identical tokens
        quality[batch.where(target.text)] = 1.0
        return quality
    for offset, excerpt in zip(batch.starts.tolist(), batch.excerpts):
        for start, end, q in _find_literal(target, excerpt):
            quality[offset + end] = max(quality[offset + end], q)
            if partial:
                for i in range(offset + start, offset + end):
                    quality[i] = max(quality[i], q * PHRASE_PREFIX_FACTOR)
    return quality


def _find_literal(literal: Literal, tokens: tuple[str, ...]) -> list[tuple[int, int, float]]:
    """(first token, last token, quality) of every place the literal occurs, on token boundaries."""
    text = literal.text
    if literal.exact or not text.strip():  # exact tokens, or whitespace such as "\n": identical tokens
        return [(i, i, 1.0) for i, t in enumerate(tokens) if t == text]
    exact_spacing = text[0].isspace()
    target = text if exact_spacing else text.strip()
    found = []
    for i in range(len(tokens)):
        first = tokens[i] if exact_spacing else tokens[i].lstrip()
        if not first:
            continue
        if literal.case != "insensitive":
            end = _match_end(tokens, i, first, target, fold=False)
            if end is not None:
                found.append((i, end, 1.0))
                continue
        if not exact_spacing and literal.case != "sensitive":
            end = _match_end(tokens, i, first.casefold(), target.casefold(), fold=True)
            if end is not None:
                found.append((i, end, 1.0 if literal.case == "insensitive" else CASE_FOLD_FACTOR))
    return found


def _match_end(tokens: tuple[str, ...], start: int, first: str, target: str, *, fold: bool) -> int | None:
    if first == target:
        return start
    if not target.startswith(first):
        return None
    text, j = first, start
    while len(text) < len(target) and j + 1 < len(tokens):
        j += 1
        text += tokens[j].casefold() if fold else tokens[j]
        if not target.startswith(text):
            return None
    return j if text == target else None


# ---- writing --------------------------------------------------------------------------------------


def quote(token: str) -> str:
    """A token as the offline explainer writes it: JSON double quotes, so the parse is exact."""
    return json.dumps(token, ensure_ascii=False)


def mark_exact(text: str) -> str:
    """Declare every quote in `text` an exact token string, so no forgiving matches apply."""
    return f"{text} {EXACT_MARK}"


def describe_target(target: Target) -> str:
    if isinstance(target, Literal):
        return quote(target.text)
    if isinstance(target, ClassOf):
        name = target.names[0]
        return f"any token {PLACE_PHRASES[name]}" if name in PLACE_PHRASES else name
    if isinstance(target, OneOf):
        return " or ".join(describe_target(option) for option in target.options)
    return "any token"


def describe_item(item: Item, examples: Iterable[str] = ()) -> str:
    """English for one item, e.g. `numbers (such as "1" and "2")`, `" God" (after " of")`,
    `any token after "("`. Examples are only written for classes of tokens (not of places)."""
    text = describe_target(item.target)
    shown = [quote(e) for e in examples]
    if shown and isinstance(item.target, ClassOf) and not CLASSES[item.target.names[0]].positional:
        text += f" (such as {join_words(shown)})"
    for condition in item.conditions:
        phrase = describe_condition(condition)
        if isinstance(item.target, AnyToken):
            text += f" {phrase}"
        else:
            text += f" ({phrase})"
    return text


def describe_condition(condition: Condition) -> str:
    """English for one condition, e.g. `after "("`, `within 3 tokens after "if"`, `when it repeats`."""
    if condition.where == "at" and isinstance(condition.target, ClassOf):
        return PLACE_PHRASES.get(condition.target.names[0], f"in {condition.target.names[0]}")
    if condition.where == "first":
        return f"among the first {condition.span} tokens"
    if condition.where == "repeat":
        return "when it repeats" + (", more strongly each time" if condition.graded else "")
    target = describe_target(condition.target)
    if condition.span > 1:
        return f"within {condition.span} tokens {condition.where} {target}"
    return f"{condition.where} {target}"


def join_words(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
