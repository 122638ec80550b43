"""The token-rule language: contexts, conditions, and the English each rule is written as."""

from __future__ import annotations

import pytest
import torch

from autointerp.agent.render import read_clauses, render
from autointerp.agent.rules import Clause, Contexts, Hypothesis, Vocab, execute
from autointerp.simulators.offline import OfflineSimulator

CODE = [
    "\n",
    "def",
    " f",
    "(",
    "x",
    "):",
    "\n   ",
    " y",
    " =",
    ' "',
    "a",
    " b",
    '"',
    "  #",
    " note",
    " x",
    "\n",
    "x",
    " x",
]
VOCAB = Vocab(sorted(set(CODE) | {" A", " B", " C", " z", "don", "'", "t"}))


def ids(strings: list[str]) -> torch.Tensor:
    return torch.tensor([[VOCAB.id_of(s) for s in strings]])


def flags(name: str, strings: list[str]) -> list[bool]:
    return Contexts(ids(strings), VOCAB)[name][0].tolist()


def test_contexts_are_the_places_the_explanation_language_reads():
    assert [s for s, f in zip(CODE, flags("in_def", CODE)) if f] == ["def", " f", "(", "x", "):", "\n   "]
    assert [s for s, f in zip(CODE, flags("in_string", CODE)) if f] == [' "', "a", " b", '"']
    assert [s for s, f in zip(CODE, flags("in_comment", CODE)) if f] == ["  #", " note", " x"]
    assert [s for s, f in zip(CODE, flags("line_start", CODE)) if f] == ["def", " y", "x"]
    assert flags("in_def", CODE[1:])[:5] == [False] * 5  # the line starts before the text: unknown
    assert flags("in_string", ["don", "'", "t", " A"]) == [False] * 4  # an apostrophe
    assert flags("in_string", [" x", " =", ' "', "a"]) == [False] * 4  # a string must close on its line


def fires(clause: Clause, strings: list[str]) -> list[float]:
    return execute(Hypothesis(clauses=[clause]), ids(strings), VOCAB)[0].tolist()


def test_each_condition_fires_where_it_says():
    seq = [" A", " B", " z", " A", " A", " B", " A"]
    assert fires(Clause(token=" A"), seq) == [1, 0, 0, 1, 1, 0, 1]
    assert fires(Clause(token=" A", condition="after", other=" B", within=2), seq) == [0, 0, 0, 1, 0, 0, 1]
    assert fires(Clause(token=" A", condition="not_after", other=" B"), seq) == [1, 0, 0, 1, 1, 0, 0]
    assert fires(Clause(token=" A", condition="early", within=4), seq) == [1, 0, 0, 1, 0, 0, 0]
    repeats = fires(Clause(token=" A", condition="repeated"), seq)
    assert repeats[0] == 0 and 0 < repeats[3] < repeats[4] < repeats[6] == 1.0
    assert fires(Clause(token=" x", condition="in_comment", strength=0.5), CODE)[15] == 0.5
    assert fires(Clause(token=" x", condition="in_comment"), CODE)[18] == 0
    assert fires(Clause(token="x", condition="in_def"), CODE)[4] == 1


def test_the_strongest_clause_wins():
    rule = Hypothesis(clauses=[Clause(token=" A", strength=0.3), Clause(token=" A", condition="early", within=1)])
    assert execute(rule, ids([" A", " A"]), VOCAB)[0].tolist() == pytest.approx([1.0, 0.3])


# One clause of each condition the renderer writes.
EVERY_CONDITION = [
    Clause(token=" A"),
    Clause(token=" A", condition="after", other=" B"),
    Clause(token=" A", condition="after", other=" B", within=3),
    Clause(token=" A", condition="not_after", other=" B"),
    Clause(token=" A", condition="in_string"),
    Clause(token=" A", condition="in_comment"),
    Clause(token=" A", condition="in_def"),
    Clause(token=" A", condition="line_start"),
    Clause(token=" A", condition="early", within=8),
    Clause(token=" A", condition="repeated"),
]


def test_every_condition_is_written_in_plain_english():
    clauses = EVERY_CONDITION
    assert [render(Hypothesis(clauses=[c])) for c in clauses] == [
        'fires on " A" (exact tokens)',
        'fires on " A" right after " B" (exact tokens)',
        'fires on " A" when " B" is among the 3 tokens before it (exact tokens)',
        'fires on " A", but not right after " B" (exact tokens)',
        'fires on " A" inside a string (exact tokens)',
        'fires on " A" inside a comment (exact tokens)',
        'fires on " A" in a def line (exact tokens)',
        'fires on " A" at the start of a line (exact tokens)',
        'fires on " A" among the first 8 tokens (exact tokens)',
        'fires on " A" when it repeats, more strongly each time (exact tokens)',
    ]
    mixed = Hypothesis(
        clauses=[Clause(token=" B", strength=0.35), Clause(token=" A"), Clause(token=" C", strength=0.2)]
    )
    assert render(mixed) == 'fires on " A"; moderately on " B"; weakly on " C" (exact tokens)'
    assert render(Hypothesis()) == "fires on nothing in particular"


def test_the_offline_simulator_reads_the_token_conditions_it_has_words_for():
    sim = OfflineSimulator()
    seq = [" B", " A", " z", " A"]
    after = render(Hypothesis(clauses=[Clause(token=" A", condition="after", other=" B")]))
    not_after = render(Hypothesis(clauses=[Clause(token=" A", condition="not_after", other=" B")]))
    assert [v > 0 for v in sim.predict(after, seq)] == [False, True, False, False]
    assert [v > 0 for v in sim.predict(not_after, seq)] == [False, False, False, True]


def test_read_clauses_reads_back_every_rendered_condition():
    vocab = Vocab([" A", " B", " C"])
    clauses = EVERY_CONDITION
    for clause in clauses:
        assert read_clauses(render(Hypothesis(clauses=[clause])), vocab) == [clause]
    mixed = Hypothesis(clauses=[Clause(token=" B", strength=0.4), Clause(token=" A"), Clause(token=" C", strength=0.2)])
    assert read_clauses(render(mixed), vocab) == [mixed.clauses[1], mixed.clauses[0], mixed.clauses[2]]


def test_read_clauses_reads_what_an_explanation_says_fires():
    vocab = Vocab([" A", " B", " C", "x"])
    text = 'strongly on " A" (after " B"), the `x` token, but not " C"; numbers; weakly on " A" too'
    assert read_clauses(text, vocab) == [
        Clause(token=" A", condition="after", other=" B", strength=0.7),
        Clause(token="x", strength=0.7),
    ]
    # a condition no rule has leaves the token firing always; an unknown context token, too
    assert read_clauses('" A" inside brackets; " B" right after " Z"', vocab) == [
        Clause(token=" A"),
        Clause(token=" B"),
    ]
