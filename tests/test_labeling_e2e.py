"""The explain and score stages end to end over a real SQLite store: offline, and through the official
SDK to the fake server. Every unit ends labelled or with a recorded failure, nothing is duplicated,
a re-run repeats nothing, and a spent budget stops the stage with finished work kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from autointerp.errors import UserError
from autointerp.explainers import LLMExplainer, OfflineExplainer
from autointerp.explainers.llm import LLMExplainerConfig
from autointerp.labeling import explain_units, score_units
from autointerp.llm import Budget, BudgetExceeded, RetryPolicy, make_llm_client
from autointerp.pipeline import LabelSpec
from autointerp.simulators import LLMSimulator, OfflineSimulator
from autointerp.store import CatalogStore, open_store
from autointerp.testing.fake_llm_server import FakeLLMServer, Fault
from autointerp.testing.planted import SimulatingResponder, planted_harvest, planted_units

SOURCE = "planted/test"
SCORERS = ["simulation", "detection", "fuzzing"]
FAST = RetryPolicy(max_attempts=2, initial_wait_s=0.001, max_wait_s=0.01, jitter_s=0.001)


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-labeling")


@pytest.fixture
def store(tmp_path: Path) -> CatalogStore:
    with open_store(tmp_path / "run.db") as s:
        s.put_source(SOURCE, {"planted": True})
        s.put_units(SOURCE, [planted_harvest(u) for u in planted_units(6)])
        yield s


def _rows(store: CatalogStore, table: str) -> int:
    return store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_offline_pipeline_labels_every_unit_once(store: CatalogStore) -> None:
    explainer, simulator = OfflineExplainer(), OfflineSimulator()
    explained = asyncio.run(explain_units(store, SOURCE, None, explainer, progress=False))
    assert (explained.written, explained.failed, explained.skipped) == (6, 0, 0)
    scored = asyncio.run(
        score_units(store, SOURCE, None, explanation_settings_hash=explainer.settings_hash, scorers=SCORERS, simulator=simulator, progress=False)
    )  # fmt: skip
    assert (scored.written, scored.failed, scored.not_explained) == (18, 0, 0)
    values = [s.value for s in store.scores(SOURCE, scorer="simulation")]
    assert len(values) == 6 and min(values) > 0.9
    # A second run finds everything done.
    again = asyncio.run(explain_units(store, SOURCE, None, explainer, progress=False))
    rescored = asyncio.run(
        score_units(store, SOURCE, None, explanation_settings_hash=explainer.settings_hash, scorers=SCORERS, simulator=simulator, progress=False)
    )  # fmt: skip
    assert (again.skipped, again.written, rescored.skipped, rescored.written) == (6, 0, 6, 0)
    assert _rows(store, "explanations") == 6 and _rows(store, "scores") == 18


def _labels(store: CatalogStore) -> tuple[list[tuple], list[tuple]]:
    explanations = sorted((e.unit_kind, e.unit_index, e.text, e.settings_hash) for e in store.explanations(SOURCE))
    scores = sorted((s.unit_kind, s.unit_index, s.scorer, s.value, repr(s.parts)) for s in store.scores(SOURCE))
    return explanations, scores


def test_worker_processes_give_the_same_records_as_one_process(tmp_path: Path) -> None:
    """The offline explainer and simulator spread over processes write exactly what one process writes."""
    results = []
    for processes in (1, 2):
        with open_store(tmp_path / f"p{processes}.db") as s:
            s.put_source(SOURCE, {"planted": True})
            s.put_units(SOURCE, [planted_harvest(u) for u in planted_units(40)])
            explainer, simulator = OfflineExplainer(), OfflineSimulator()
            explained = asyncio.run(explain_units(s, SOURCE, None, explainer, processes=processes, progress=False))
            scored = asyncio.run(
                score_units(s, SOURCE, None, explanation_settings_hash=explainer.settings_hash, scorers=SCORERS,
                            simulator=simulator, processes=processes, progress=False)
            )  # fmt: skip
            assert (explained.written, scored.written) == (40, 120)
            results.append(_labels(s))
    assert results[0] == results[1]
    assert len(results[0][0]) == 40 and len(results[0][1]) == 120


def test_llm_pipeline_through_the_fake_server(store: CatalogStore, fake_llm_server: FakeLLMServer) -> None:
    responder = SimulatingResponder()
    fake_llm_server.responder = responder
    fake_llm_server.add_faults(Fault(status=400))  # the first request fails for good: one failed unit

    def stages() -> tuple:
        client = make_llm_client(
            "openai:gpt-4o-mini",
            base_url=fake_llm_server.openai_base_url,
            ledger=store.ledger,
            concurrency=4,
            retry=FAST,
        )
        explainer, simulator = LLMExplainer(client), LLMSimulator(client)
        explained = asyncio.run(explain_units(store, SOURCE, None, explainer, concurrency=4, progress=False))
        scored = asyncio.run(
            score_units(store, SOURCE, None, explanation_settings_hash=explainer.settings_hash, scorers=SCORERS,
                        simulator=simulator, concurrency=4, progress=False)
        )  # fmt: skip
        return explainer, explained, scored

    explainer, explained, scored = stages()
    assert (explained.written, explained.failed) == (5, 1)
    assert (scored.written, scored.failed, scored.not_explained) == (15, 0, 1)
    explanations = store.explanations(SOURCE)
    assert len(explanations) == 6  # one row per unit: labelled or a recorded failure
    failed = [e for e in explanations if e.failed]
    assert len(failed) == 1 and "400" in failed[0].error and failed[0].text == ""
    for e in explanations:
        assert e.settings_hash == explainer.settings_hash and e.prompt_version == "explain_v1"
        if not e.failed:
            assert e.text.startswith("fires on ") and e.prompt_tokens > 0
            assert {s.scorer for s in store.scores(SOURCE, kind=e.unit_kind, index=e.unit_index)} == set(SCORERS)
    assert _rows(store, "scores") == 15
    assert min(s.value for s in store.scores(SOURCE, scorer="simulation")) > 0.6  # no strength words: lower

    # Second run: only the failed unit is retried (its explanation, then its scores).
    before = fake_llm_server.request_count
    _, explained, scored = stages()
    assert (explained.written, explained.failed, explained.skipped) == (1, 0, 5)
    assert (scored.written, scored.skipped) == (3, 5)
    retried = fake_llm_server.request_count - before
    assert 0 < retried < before / 4
    assert _rows(store, "explanations") == 6 and _rows(store, "scores") == 18

    # Third run: nothing left, not a single request.
    before = fake_llm_server.request_count
    _, explained, scored = stages()
    assert fake_llm_server.request_count == before
    assert (explained.skipped, scored.skipped) == (6, 6)


def test_spent_budget_stops_the_stage_and_keeps_finished_work(
    store: CatalogStore, fake_llm_server: FakeLLMServer
) -> None:
    fake_llm_server.responder = SimulatingResponder()
    prices = {"gpt-4o-mini": {"input": 0.0, "output": 1_000_000.0}}  # $1 per completion token

    def client(budget: Budget):
        return make_llm_client(
            "openai:gpt-4o-mini", base_url=fake_llm_server.openai_base_url, ledger=store.ledger, budget=budget,
            prices=prices, concurrency=1, retry=FAST,
        )  # fmt: skip

    # Each call reserves its worst case (16 output tokens: $16) and costs what its reply's few tokens
    # cost, so $30 lets a few calls through before the next reservation no longer fits.
    config = LLMExplainerConfig(max_completion_tokens=16)
    explainer = LLMExplainer(client(Budget(max_cost_usd=30.0)), config)
    with pytest.raises(BudgetExceeded):
        asyncio.run(explain_units(store, SOURCE, None, explainer, concurrency=1, progress=False))
    kept = store.explanations(SOURCE)
    assert 0 < len(kept) < 6 and not any(e.failed for e in kept)
    first_requests = fake_llm_server.request_count
    assert first_requests == len(kept)  # nothing was asked that was not saved

    resumed = LLMExplainer(client(Budget(max_cost_usd=None)), config)
    report = asyncio.run(explain_units(store, SOURCE, None, resumed, concurrency=1, progress=False))
    assert (report.skipped, report.written) == (len(kept), 6 - len(kept))
    assert fake_llm_server.request_count == 6  # every unit asked exactly once over both runs


def test_units_can_be_chosen_and_bad_choices_are_user_errors(store: CatalogStore) -> None:
    explainer = OfflineExplainer()
    report = asyncio.run(
        explain_units(store, SOURCE, [("feature", 2), ("feature", 2), ("feature", 0)], explainer, progress=False)
    )
    assert report.units == 2 and {e.unit_index for e in store.explanations(SOURCE)} == {0, 2}
    with pytest.raises(UserError, match="feature:99"):
        asyncio.run(explain_units(store, SOURCE, [("feature", 99)], explainer, progress=False))
    with pytest.raises(ValidationError, match="vibes"):  # scorer names are checked where a config is read
        LabelSpec(scorers=["simulation", "vibes"])
