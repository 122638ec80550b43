"""The agent on planted units of the built-in model: planting, probe tools, the offline driver,
the benchmark's output and the command line."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch

from autointerp.agent.counterfactuals import HELDOUT_SNIPPETS, SnippetTokens
from autointerp.agent.evaluate import planted_probe_set
from autointerp.agent.offline_driver import OfflineAgentConfig, OfflineDriver
from autointerp.agent.planted import (
    FAMILIES,
    VARIANTS,
    generate_planted,
    harvest_planted,
    sample_stats,
    subject_vocab,
)
from autointerp.agent.probes import (
    BudgetSpent,
    CorpusWindows,
    Prober,
    edit,
    neuron_unit,
    planted_unit,
)
from autointerp.agent.render import render
from autointerp.agent.rules import execute
from autointerp.cli import main
from autointerp.errors import UserError
from autointerp.explainers.offline import OfflineExplainer
from autointerp.language import parse
from autointerp.simulators.offline import OfflineSimulator
from sae.harvest import HarvestConfig
from sae.subject.models import BUILTIN_HOOK
from tests.html_data import read_units

HOOK = BUILTIN_HOOK


@pytest.fixture(scope="module")
def stats(subject):
    return sample_stats(subject)


@pytest.fixture(scope="module")
def planted(stats):
    return generate_planted(stats, 50, seed=0)


@pytest.fixture(scope="module")
def vocab(subject):
    return subject_vocab(subject)


@pytest.fixture(scope="module")
def corpus(subject):
    return CorpusWindows(subject, count=120)


def test_planted_units_cover_every_family_and_follow_the_seed(stats, planted):
    assert len(planted) == 50
    assert {u.family for u in planted} == set(FAMILIES)
    assert {u.variant for u in planted} >= {"after", "not_after", "or", "early", "line_start", "repeated", "in_string",
                                            "in_comment", "in_def", "always"}  # fmt: skip
    again = generate_planted(stats, 50, seed=0)
    other = generate_planted(stats, 50, seed=1)
    assert [u.rule for u in again] == [u.rule for u in planted]
    assert [u.rule for u in other] != [u.rule for u in planted]


def test_planted_units_are_harvested_by_their_rule(subject, planted, vocab):
    units = [planted[2], planted[8]]  # not after, inside a comment
    harvests = harvest_planted(subject, HOOK, units, HarvestConfig(n_tokens=8192, n_hard_negative=0))
    assert [h.kind for h in harvests] == ["feature", "feature"]
    for unit, harvest in zip(units, harvests):
        assert harvest.promoted_tokens == []  # no direction at the hook, so no logit effects
        for example in harvest.examples:
            if example.start == 0 and example.tokens[0] != "<|endoftext|>":  # the rule restarts at a window
                ids = torch.tensor([[vocab.id_of(t) if t in vocab.ids else 0 for t in example.tokens]])
                assert execute(unit.rule, ids, vocab)[0].tolist() == pytest.approx(example.activations, abs=1e-4)


def test_prober_counts_calls_and_runs_every_kind_of_unit(subject, planted, vocab):
    tokens = subject.tokenizer.encode_batch(["def f(x):\n    return x  # done"])[0]
    prober = Prober(subject, HOOK, planted_unit(planted[0], vocab), vocab, budget=2)
    out = prober.run([tokens, tokens[:5]], "twice")
    assert prober.calls == 2 and len(out[1]) == 5 and out[0][:5] == out[1]  # padding changes nothing before it
    assert out[0] == execute(planted[0].rule, torch.tensor([tokens]), vocab)[0].tolist()
    assert [p.purpose for p in prober.log] == ["twice", "twice"]
    with pytest.raises(BudgetSpent):
        prober.run([tokens])
    neurons = Prober(subject, HOOK, neuron_unit(7), vocab, budget=1).run_texts(["def f(x):"])[0]
    ids = torch.tensor([subject.tokenizer.encode_batch(["def f(x):"])[0]])
    assert neurons == pytest.approx(subject.activations(ids, HOOK)[0, :, 7].tolist(), abs=1e-4)


def test_rendered_rules_read_back_exactly_on_held_out_probes(subject, planted, vocab, corpus):
    """What the renderer writes, the offline simulator reads as the rule itself: on each unit's
    held-out probes the same tokens fire, and where every clause has one strength, as strongly."""
    heldout = SnippetTokens(subject.tokenizer, HELDOUT_SNIPPETS)
    simulator = OfflineSimulator()
    assert {u.variant for u in planted} == {variant for _, variant in VARIANTS}
    for unit in planted:
        probes = planted_probe_set(unit, corpus, heldout, vocab, n=40)
        text = render(unit.rule)
        assert parse(text).coverage == 1.0, text
        one_strength = len({c.strength for c in unit.rule.clauses}) == 1
        for tokens, actual in zip(probes.tokens, probes.activations):
            predicted = simulator.predict(text, [vocab.strings[t] for t in tokens])
            assert [p > 0 for p in predicted] == [a > 0 for a in actual], (unit.variant, text)
            if one_strength:
                assert predicted == pytest.approx([10 * a for a in actual], abs=1e-3), (unit.variant, text)


def test_corpus_search_and_window_edits(corpus, vocab):
    the = vocab.id_of(" the")
    found = corpus.search(r"\bdef\b", 3, without=[the])
    assert len(found) == 3 and all("def" in "".join(vocab.strings[t] for t in w) and the not in w for w in found)
    w = [1, 2, 3, 4]
    assert edit(w, "replace", 1, [9, 9]) == [1, 9, 9, 3, 4]
    assert edit(w, "delete", 0, count=2) == [3, 4]
    assert edit(w, "insert", 4, [7]) == [1, 2, 3, 4, 7]
    with pytest.raises(UserError):
        edit(w, "insert", 9, [7])
    with pytest.raises(UserError):
        corpus.search("(", 1)


@pytest.fixture(scope="module")
def traced(subject, planted, vocab, corpus):
    """The driver on four conditional units (harvested on a small sample), twice each."""
    units = [planted[2], planted[5], planted[6], planted[8]]  # not after, line start, repeats, comment
    harvests = harvest_planted(subject, HOOK, units, HarvestConfig(n_tokens=60_000, n_hard_negative=0))
    driver = OfflineDriver.for_subject(subject, corpus, OfflineAgentConfig(budget=30))
    runs = []
    for unit, harvest in zip(units, harvests):
        initial = OfflineExplainer().explain_now(harvest).text
        traces = [
            driver.run(harvest, initial, Prober(subject, HOOK, planted_unit(unit, vocab), vocab, 30)) for _ in range(2)
        ]
        runs.append((unit, traces))
    return runs


def test_the_offline_driver_recovers_conditional_rules_within_budget(traced):
    for unit, (trace, again) in traced:
        assert trace.final == render(unit.rule), (unit.variant, trace.initial, trace.final)
        assert trace.calls <= 30 and len(trace.probes) == trace.calls
        assert trace.revisions and all(r.reason and r.before != r.after for r in trace.revisions)
        assert trace.revisions[-1].after == trace.final
        assert again.final == trace.final and again.calls == trace.calls  # deterministic


def test_benchmark_json_has_every_method(capsys):
    from evals.agent_benchmark import main as bench

    assert bench(["--units", "3", "--budget", "8", "--harvest-tokens", "8192", "--probes", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for method in ("one_shot", "top_quantile", "best_of_k", "revision", "agent"):
        assert 0 <= result["planted"][method]["solved_fraction"] <= 1
    assert set(result["families"]) == set(FAMILIES)


def test_cli_plants_runs_the_agent_stores_traces_and_resumes(tmp_path, capsys):
    db = str(tmp_path / "c.db")
    assert main(["plant", "--db", db, "--units", "3", "--tokens", "8192"]) == 0
    capsys.readouterr()
    assert main(["agent", "--db", db, "--units", "all", "--kinds", "feature", "--budget", "6"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["done"] == 3 and 0 < report["calls"] <= 18
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM agent_traces").fetchone()[0] == 3
        assert conn.execute("SELECT count(*) FROM agent_probes").fetchone()[0] == report["calls"]
        assert conn.execute("SELECT count(*) FROM explanations WHERE explainer = 'agent-offline'").fetchone()[0] == 3
    assert main(["agent", "--db", db, "--units", "all", "--kinds", "feature", "--budget", "6"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 3
    assert main(["agent", "--db", db, "--units", "all", "--kinds", "feature", "--driver", "nope"]) == 2
    assert "driver 'nope'" in capsys.readouterr().err
    assert main(["export", db, "--out", str(tmp_path / "out")]) == 0
    traces = [t for u in read_units(tmp_path / "out" / "html") for t in u["traces"]]
    assert len(traces) == 3 and all(t["calls"] <= t["budget"] and t["probes"] for t in traces)
    assert any(p["target"] is not None for t in traces for p in t["probes"])  # the unit view marks that token
