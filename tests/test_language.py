"""The explanation language read as a person would: token classes, unquoted words and lists, case
rules, places and neighbours, scoped negation, strength words, and a coverage figure for what it did
not understand. Tokens are written as the built-in model's BPE gives them (leading spaces kept)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from autointerp.language import (
    AnyToken,
    ClassOf,
    Condition,
    Item,
    Literal,
    describe_item,
    parse,
    predict,
    predict_many,
)
from autointerp.token_classes import CLASSES, PLACE_CLASS_NAMES, Places, place_masks_of


def fires(text: str, tokens: list[str]) -> list[str]:
    """The tokens an explanation predicts to fire on."""
    return [t for t, v in zip(tokens, predict(text, tokens)) if v > 0]


# ---- the cases of issue 9 -------------------------------------------------------------------------


def test_html_tags() -> None:
    tokens = ["<", "div", ">", "Hello", " world", "</", "div", ">", " if", " a", " <", " b"]
    assert fires("HTML tags", tokens) == ["<", "div", ">", "</", "div", ">"]


def test_closing_parentheses() -> None:
    tokens = ["print", "(", "len", "(", "x", ")", "):", "\n", "f", "()", " [", "]"]
    assert fires("closing parentheses", tokens) == [")", "):", "()"]
    assert fires("opening parentheses", tokens) == ["(", "(", "()"]


def test_fires_on_numbers() -> None:
    tokens = ["x", " =", " 42", ";", " y", " =", "3", ".", "14", " 0x1f", " one"]
    assert fires("fires on numbers", tokens) == [" 42", "3", "14", " 0x1f"]


def test_the_word_of_in_prepositional_phrases() -> None:
    tokens = [" the", " top", " of", " the", " world", " off", " often", "of"]
    assert fires("the word of in prepositional phrases", tokens) == [" of", "of"]
    parsed = parse("the word of in prepositional phrases")
    assert parsed.unknown == ("prepositional", "phrases") and parsed.coverage == 0.5


def test_colour_words_like_red_blue_include_green() -> None:
    tokens = [" a", " red", " car", ",", " Green", " house", " blue", " sky", " great"]
    assert fires("color words like red, blue", tokens) == [" red", " Green", " blue"]


def test_python_keywords_that_start_a_block() -> None:
    tokens = ["if", " x", ":", " for", " while", " def", " class", " with", " try", " return", " classes", " form"]
    text = "Python keywords that start a block (if, for, while, def, class, with, try)"
    assert fires(text, tokens) == ["if", " for", " while", " def", " class", " with", " try"]
    assert parse(text).coverage == 1.0


def test_negation_is_scoped_to_what_it_names() -> None:
    tokens = ["if", " x", " >", " y", ":", " return", " z", " for", " item", " in", " items"]
    assert fires('Python keywords, not variable names: "if", "for"', tokens) == ["if", " return", " for", " in"]


def test_case_rule_the_but_not_The() -> None:
    tokens = [" the", " cat", ".", " The", " dog", "the", " then", "The"]
    assert fires("the word 'the' (but not 'The')", tokens) == [" the", "the"]
    assert fires("the word 'the' in any case", tokens) == [" the", " The", "the", "The"]
    assert fires("the word 'The' (case-sensitive)", tokens) == [" The", "The"]


# ---- more of the grammar --------------------------------------------------------------------------


def test_unquoted_lists_after_such_as_and_like() -> None:
    tokens = [" error", " Warning", " foo", " warnings", " info"]
    assert fires("words such as error or warning", tokens) == [" error", " Warning"]
    assert fires("the words error, info and foo", tokens) == [" error", " foo", " info"]
    assert fires("comparison operators (>=, >, <=)", [" >=", " x", " <", " =", " =="]) == [" >=", " <", " =="]


def test_context_after_and_before() -> None:
    tokens = ["f", "(", "x", ",", " y", ")", " g", "(", "z", ")"]
    assert fires("any token that follows an opening parenthesis", tokens) == ["x", "z"]
    assert fires("identifiers followed by an opening parenthesis", tokens) == ["f", " g"]
    assert fires('the word bank, but not after "river"', [" bank", " river", " bank"]) == [" bank"]


def test_places_in_a_line_and_in_text() -> None:
    code = ["\n", "def", " foo", "(", "x", "):", "\n", "    ", "return", ' "', "hi", " there", '"', "  ", "#", " done"]
    assert fires("at the start of a line", code) == ["def", "return"]
    assert fires("identifiers in a def line", code) == [" foo", "x"]
    assert fires("words inside a string", code) == ["hi", " there"]
    assert fires("words in comments", code) == [" done"]


def test_strength_words_set_levels() -> None:
    tokens = [" God", " Lord", " king"]
    assert predict("most strongly on God; moderately on Lord; weakly on king", tokens) == [10.0, 4.0, 2.0]
    assert predict('"God", especially after "the"', [" the", " God"]) == [0.0, 10.0]


def test_class_intersection_and_negated_place() -> None:
    tokens = [" MAX", " Max", " x", " MIN"]
    assert fires("upper-case identifiers", tokens) == [" MAX", " MIN"]
    assert fires("numbers except in comments", ["1", " #", " 2"]) == ["1"]


def test_unknown_words_are_read_as_themselves_and_reported() -> None:
    parsed = parse("references to rivers")
    assert parsed.coverage == 0.0 and parsed.unknown == ("rivers",)
    assert fires("references to rivers", [" river", " rivers", " lake"]) == [" river", " rivers"]
    # a longer unknown phrase is reported, not guessed at
    parsed = parse("the token 'self' in method definitions")
    assert parsed.unknown == ("method", "definitions") and parsed.coverage == 0.5
    assert fires("the token 'self' in method definitions", [" self", " method", " definitions"]) == [" self"]


def test_silence_and_empty_text() -> None:
    assert parse("never fires").items == () and parse("never fires").coverage == 1.0
    assert parse("").coverage == 0.0 and predict("", ["a"]) == [0.0]


# ---- classes and writing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tokens", "expected"),
    [
        ("upper-case words", [" LATIN", " Box", "A", " GREEK"], [True, False, False, True]),
        ("capitalised words", [" London", " LATIN", " x"], [True, False, False]),
        ("whitespace", ["    ", "\n", " x"], [True, True, False]),
        ("newlines", ["\n", "\n    ", " x"], [True, True, False]),
        ("non-ASCII characters", [" caf", "\u00e9", "\ufffd", " e"], [False, True, True, False]),
        ("word pieces", ["get", "attr", " x"], [True, True, False]),
        ("URLs and file paths", [" see", " /", "usr", "/", "lib", " now"], [False, True, True, True, True, False]),
    ],
)
def test_token_classes(name: str, tokens: list[str], expected: list[bool]) -> None:
    token_class = CLASSES[name]
    if token_class.token_test is not None:
        assert [token_class.token_test(t) for t in tokens] == expected
    else:
        assert place_masks_of([tuple(tokens)])[0][PLACE_CLASS_NAMES.index(name)].tolist() == expected


def test_excerpts_read_together_are_each_read_on_their_own() -> None:
    """No string, bracket, comment or line runs from one excerpt into the next."""
    excerpts = [
        (" x", " =", " '", "abc"),
        ("(", "[", "\n", "def", " f"),
        ('"""', " doc"),
        (" #", " see", " http", "://", "a"),
        ("y", ")", "\n", "    ", "z"),
    ]
    together = Places(excerpts).masks()
    assert np.array_equal(together, np.concatenate([Places([e]).masks() for e in excerpts], axis=1))
    last = together[:, -5:]
    for name in ("strings", "docstrings", "comments", "URLs and file paths", "bracketed tokens", "def lines"):
        assert not last[PLACE_CLASS_NAMES.index(name)].any(), name
    assert last[PLACE_CLASS_NAMES.index("the start of a line")].tolist() == [False, False, False, False, True]


def test_every_class_has_a_name_the_parser_reads_back() -> None:
    for name, token_class in CLASSES.items():
        item = (
            Item(AnyToken(), 10.0, (Condition("at", ClassOf((name,))),))
            if token_class.positional
            else Item(ClassOf((name,)), 10.0)
        )
        assert parse(describe_item(item)).items == (item,), name
        where = "at" if token_class.positional else "after"
        narrowed = Item(Literal(" x", exact=True), 10.0, (Condition(where, ClassOf((name,))),))
        assert parse(describe_item(narrowed) + " (exact tokens)").items == (narrowed,), name


def test_written_items_read_back() -> None:
    items = [
        Item(Literal(" God", exact=True), 10.0, (Condition("after", Literal(" of", exact=True)),)),
        Item(AnyToken(), 10.0, (Condition("after", ClassOf(("closing parentheses",))),)),
        Item(ClassOf(("numbers",)), 10.0),
    ]
    text = ", ".join(describe_item(i) for i in items) + " (exact tokens)"
    assert parse(text).items == tuple(items)
    with_examples = describe_item(Item(ClassOf(("numbers",)), 10.0), [" 1", " 2"])
    assert with_examples == 'numbers (such as " 1" and " 2")'
    assert parse(with_examples).items[0] == Item(ClassOf(("numbers",)), 10.0)


def test_llm_quotes_of_every_kind() -> None:
    text = "the word \u201cbank\u201d, especially `Bank`, but not 'banking'"
    assert predict(text, [" bank", " Bank", " banking", " banks"]) == [10.0, 10.0, 0.0, 0.0]
    assert parse(text).coverage == 1.0


def test_the_token_after_names_a_position_not_a_word() -> None:
    assert fires('the token after "("', ["f", "(", "x", ")"]) == ["x"]
    assert fires("the token 'self'", [" self", " x"]) == [" self"]


# ---- distances, positions and repeats -------------------------------------------------------------

NEAR = [" B", " x", " A", " y", " z", " w", " A", " B", " A"]  # " A" at 2 (2 after " B"), 6 (5 after), 8 (1 after)


@pytest.mark.parametrize(
    "text",
    [
        'fires on " A" when " B" is among the 3 tokens before it (exact tokens)',  # what the agent writes
        '" A" within 3 tokens after " B"',
        '" A" within three tokens after "B"',
        '" A" up to 3 tokens after " B"',
        '" A" at most 3 tokens after " B"',
        '" A" no more than 3 tokens after " B"',
        '" A" within 3 tokens following " B"',
        '" A" after " B" (within 3 tokens)',
        '" A" preceded by " B" within 3 tokens',
        '" A" when " B" appears in the previous 3 tokens',
        '" A" when " B" is within 3 tokens before it',
        '" A" if " B" occurs among the 3 preceding tokens',
        '" A" when " B" is in the last 3 tokens',
        '" A" with " B" up to 3 tokens earlier',
    ],
)
def test_within_n_tokens_after(text: str) -> None:
    assert [i for i, v in enumerate(predict(text, NEAR)) if v > 0] == [2, 8]
    assert parse(text).coverage == 1.0, parse(text).unknown


@pytest.mark.parametrize(
    "text",
    [
        '" B" within 2 tokens before " A"',
        '" B" up to two tokens before " A"',
        '" B" when " A" is among the 2 tokens after it',
        '" B" when " A" is in the next 2 tokens',
        '" B" when " A" is within 2 tokens later',
    ],
)
def test_within_n_tokens_before(text: str) -> None:
    assert [i for i, v in enumerate(predict(text, NEAR)) if v > 0] == [0, 7]
    assert parse(text).coverage == 1.0, parse(text).unknown


def test_right_before_and_after_it_and_the_distance_one() -> None:
    assert fires('" A" when " B" is right before it', NEAR) == [" A"]
    assert [i for i, v in enumerate(predict('" A" when " B" is right before it', NEAR)) if v > 0] == [8]
    assert [i for i, v in enumerate(predict('" B" when " x" is right after it', NEAR)) if v > 0] == [0]
    assert [i for i, v in enumerate(predict('" A" within 1 tokens after " B"', NEAR)) if v > 0] == [8]
    # without "when" (or "if", "where", "with", "whenever", "while") the last target is the context
    assert [i for i, v in enumerate(predict('" A" once " B" is among the 2 tokens before it', NEAR)) if v > 0] == [2, 8]


FIRST = [" A", " x", " A", " y", " A", " z", " A", " w", " A"]


@pytest.mark.parametrize(
    "text",
    [
        'fires on " A" among the first 5 tokens (exact tokens)',  # what the agent writes
        '" A" in the first 5 tokens',
        '" A" in the first five tokens',
        '" A" within the first 5 tokens of the text',
        '" A" in the first 5 positions of the input',
        '"A" among the first 5 tokens of the window',
    ],
)
def test_among_the_first_n_tokens(text: str) -> None:
    assert [i for i, v in enumerate(predict(text, FIRST)) if v > 0] == [0, 2, 4]
    assert parse(text).coverage == 1.0, parse(text).unknown


def test_position_negated_and_on_any_token() -> None:
    assert [i for i, v in enumerate(predict('" A", but not in the first 5 tokens', FIRST)) if v > 0] == [6, 8]
    assert [i for i, v in enumerate(predict("any token among the first 2 tokens", FIRST)) if v > 0] == [0, 1]


REPEATS = [" A", " x", " A", " a", "A", " B", " A", " A"]


@pytest.mark.parametrize(
    "text",
    [
        '" A" when it repeats',
        '" A" each time it repeats',
        '" A" every time it repeats',
        '" A" when repeated',
        '" A" on its repeats',
        '" A" on its second and later occurrences',
        'the second and later occurrences of " A"',
        'second or later occurrences of " A"',
        '" A", every occurrence after the first',
        '" A" after its first occurrence',
        '" A" when it has appeared before',
        '" A" when it appears again',
    ],
)
def test_repeats(text: str) -> None:
    # " a" and "A" are the same word as " A" (case and spacing aside), and count as repeats
    assert [i for i, v in enumerate(predict(text, REPEATS)) if v > 0] == [2, 6, 7]
    assert parse(text).coverage == 1.0, parse(text).unknown


@pytest.mark.parametrize(
    "text",
    [
        'fires on " A" when it repeats, more strongly each time (exact tokens)',  # what the agent writes
        '" A" more strongly each time it repeats (exact tokens)',
        '" A" when it repeats, increasingly (exact tokens)',
        '" A" when repeated, stronger with each repeat (exact tokens)',
        '" A" more strongly the more it repeats (exact tokens)',
        'the second and later occurrences of " A", more strongly each time (exact tokens)',
    ],
)
def test_graded_repeats(text: str) -> None:
    tokens = [" A", " x", " A", " A", "A", " A", " A"]  # "A" is another exact token: no repeat, no match
    assert [round(v, 2) for v in predict(text, tokens)] == [0.0, 0.0, 3.33, 6.67, 0.0, 10.0, 10.0]
    assert parse(text).coverage == 1.0, parse(text).unknown


def test_repeats_of_a_class_are_the_same_token_again() -> None:
    tokens = [" 1", " 2", " 1", " 3", " 2"]
    assert [i for i, v in enumerate(predict("numbers when they repeat", tokens)) if v > 0] == [2, 4]
    assert [i for i, v in enumerate(predict('" 1", but not when it repeats', tokens)) if v > 0] == [0]


def test_new_conditions_are_written_and_read_back() -> None:
    exact = Literal(" A", exact=True)
    items = [
        Item(exact, 10.0, (Condition("after", Literal(" B", exact=True), span=3),)),
        Item(exact, 10.0, (Condition("before", Literal(" B", exact=True), span=2),)),
        Item(exact, 10.0, (Condition("first", AnyToken(), span=8),)),
        Item(exact, 10.0, (Condition("repeat", exact),)),
        Item(exact, 10.0, (Condition("repeat", exact, graded=True),)),
        Item(AnyToken(), 10.0, (Condition("first", AnyToken(), span=4),)),
    ]
    for item in items:
        text = describe_item(item) + " (exact tokens)"
        assert parse(text).items == (item,), text
        assert parse(text).coverage == 1.0, text


@pytest.mark.parametrize(
    "text",
    [
        '"x" within 3 tokens after "a"',
        '"b" within 2 tokens before "a"',
        "any token among the first 3 tokens",
        '"x" when it repeats, more strongly each time',
        'numbers, but not right after "a"; weakly on "b" (after "x")',
    ],
)
def test_many_excerpts_at_once_predict_what_each_alone_does(text: str) -> None:
    """No condition reaches across excerpts laid end to end: the batch equals one excerpt at a time."""
    rng = random.Random(0)
    excerpts = [[rng.choice(["a", "b", "x", " 1", "(", "\n"]) for _ in range(rng.randint(0, 9))] for _ in range(40)]
    assert predict_many(text, excerpts) == [predict(text, tokens) for tokens in excerpts]
