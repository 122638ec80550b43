"""The catalog store on real SQLite files: round trips, idempotent writes, resume, crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autointerp.errors import UserError
from autointerp.llm.ledger import BatchOutcome, LLMCall
from autointerp.records import (
    ActivationExample,
    ExampleScore,
    Explanation,
    NeuronWeight,
    Score,
    TokenWeight,
    UnitHarvest,
    UnitKind,
    UnitStats,
)
from autointerp.store import SCHEMA_VERSION, CatalogStore, StoreError, open_store

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_unit(kind: str, index: int, n_examples: int = 6, seed: int = 0) -> UnitHarvest:
    samplings = ["top", "quantile", "random", "silent"]
    examples = [
        ActivationExample(
            window_id=100 * index + w + seed,
            tokens=[f" tok{w}", "é\n", "<tab>\t", '"q"'],
            activations=[0.0, 1.5 + w, 0.25 * seed, 1e-7],
            split="explain" if w % 2 == 0 else "score",
            sampling=samplings[w % 4],
            quantile=(w % 3) if samplings[w % 4] == "quantile" else None,
        )
        for w in range(n_examples)
    ]
    return UnitHarvest(
        kind=kind,
        index=index,
        stats=UnitStats(
            tokens_seen=1000,
            active_count=10 + index,
            density=(10 + index) / 1000,
            max_activation=1.5 + n_examples,
            mean_activation=0.02,
            mean_active_activation=2.0,
            histogram_edges=[0.01, 0.1, 1.0, 10.0],
            histogram_counts=[3, 4, 3 + index],
        ),
        examples=examples,
        promoted_tokens=[TokenWeight(token=" the", weight=0.5)],
        suppressed_tokens=[TokenWeight(token=" a", weight=-0.4)],
        top_neurons=[NeuronWeight(neuron=7, weight=0.9)] if kind == "feature" else [],
    )


def make_explanation(index: int, settings_hash: str = "h1", text: str = "commas") -> Explanation:
    return Explanation(
        unit_kind="feature",
        unit_index=index,
        text=text,
        explainer="llm",
        model="openai:gpt-4o-mini",
        prompt_version="explain-v1",
        prompt_tokens=100,
        completion_tokens=10,
        cost_usd=0.0012,
        raw_response="<raw>",
        settings_hash=settings_hash,
    )


def make_score(index: int, *, failed: bool = False, value: float | None = 0.7) -> Score:
    return Score(
        unit_kind="feature",
        unit_index=index,
        explanation_settings_hash="h1",
        scorer="simulation",
        simulator="offline",
        value=None if failed else value,
        failed=failed,
        error="LLM gave no numbers" if failed else None,
        parts={"top": 0.8, "random": None},
        details=[
            ExampleScore(window_id=1, sampling="top", predicted=[0.0, 3.0], actual=[0.0, 2.5]),
            ExampleScore(window_id=2, sampling="random", predicted=1.0, actual=0.0, correct=False),
        ],
        settings_hash="s1",
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CatalogStore]:
    with open_store(tmp_path / "run.db") as s:
        yield s


def test_units_round_trip_in_order_with_filters(store: CatalogStore) -> None:
    units = [make_unit("neuron", 3), make_unit("feature", 2), make_unit("feature", 0)]
    assert store.put_units("src", units) == 3

    assert store.unit_keys("src") == [("feature", 0), ("feature", 2), ("neuron", 3)]
    assert store.unit_keys("src", "neuron") == [("neuron", 3)]
    back = list(store.iter_units("src"))
    assert back == [units[2], units[1], units[0]]  # every field, example order kept
    assert [u.index for u in store.iter_units("src", "feature", indices=[2, 99])] == [2]
    assert list(store.iter_units("other-source")) == []
    assert store.get_unit("src", "neuron", 4) is None


def test_put_units_is_idempotent_and_replaces_old_examples(store: CatalogStore) -> None:
    store.put_units("src", [make_unit("feature", 1, n_examples=8)])
    store.put_units("src", [make_unit("feature", 1, n_examples=8)])
    assert store.db.execute("SELECT count FROM examples").fetchall() == [(8,)]  # one packed row per unit

    rewritten = make_unit("feature", 1, n_examples=3, seed=50)  # a re-harvest: other windows
    store.put_units("src", [rewritten])
    assert store.db["units"].count == 1
    assert store.db.execute("SELECT count FROM examples").fetchall() == [(3,)]
    assert store.get_unit("src", "feature", 1) == rewritten


def test_failed_batch_writes_nothing(store: CatalogStore) -> None:
    store.put_units("src", [make_unit("feature", 0)])

    def harvests():
        yield make_unit("feature", 1)
        raise RuntimeError("harvest crashed")

    with pytest.raises(RuntimeError):
        store.put_units("src", harvests())
    assert store.unit_keys("src") == [("feature", 0)]


def test_sources_and_runs(store: CatalogStore) -> None:
    store.put_source("b/sae", {"d_sae": 4096, "hook": "blocks.0.mlp.act"})
    store.put_source("a/neurons", {"hook": "blocks.0.mlp.act"})
    store.put_source("a/neurons", {"hook": "blocks.0.mlp.act", "n": 512})  # replaces
    assert store.sources() == ["a/neurons", "b/sae"]
    assert store.source_config("a/neurons") == {"hook": "blocks.0.mlp.act", "n": 512}
    with pytest.raises(StoreError, match="known: a/neurons, b/sae"):
        store.source_config("missing")

    first = store.new_run("run", {"explainer": "offline", "seed": 0})
    store.set_run_status(first, "done")
    second = store.new_run("explain", {"explainer": "offline", "seed": 1})
    assert first != second
    runs = store.runs()
    assert [r["run_id"] for r in runs] == [first, second]  # history kept, oldest first
    assert runs[0]["status"] == "done" and runs[0]["config"]["seed"] == 0 and runs[1]["status"] == "running"


def test_explanations_round_trip_and_skip_by_settings_hash(store: CatalogStore) -> None:
    assert store.explanations("src", "feature", 4) == []
    store.put_explanation("src", make_explanation(4, text="first"))
    store.put_explanation("src", make_explanation(4, text="second"))  # same key: replaced
    store.put_explanation("src", make_explanation(4, settings_hash="h2"))
    store.put_explanations("src", [make_explanation(5)])

    assert store.explanations("other", "feature", 4) == []
    found = store.explanations("src", "feature", 4)
    assert [e.settings_hash for e in found] == ["h1", "h2"]
    assert found[0] == make_explanation(4, text="second")
    assert len(store.explanations("src")) == 3


def test_scores_round_trip_and_failed_ones_are_redone(store: CatalogStore) -> None:
    key: tuple[str, UnitKind, int, str, str, str] = ("src", "feature", 4, "simulation", "h1", "s1")
    assert not store.has_score(*key)
    store.put_score("src", make_score(4, failed=True))
    assert not store.has_score(*key)  # a re-run retries failures
    assert store.has_score(*key, include_failed=True)

    store.put_score("src", make_score(4))  # the retry succeeded: replaces the failure
    assert store.has_score(*key)
    assert store.scores("src") == [make_score(4)]
    assert store.scores("src", scorer="detection") == []
    store.put_scores("src", [make_score(5, failed=True)])
    [failed] = store.scores("src", index=5)
    assert failed.failed and failed.value is None and failed.error == "LLM gave no numbers"


def test_catalog_entries_join_everything(store: CatalogStore) -> None:
    store.put_units("src", [make_unit("feature", 0), make_unit("feature", 1)])
    store.put_explanation("src", make_explanation(1))
    store.put_score("src", make_score(1))
    entries = list(store.catalog_entries("src"))
    assert [e.harvest.index for e in entries] == [0, 1]
    assert entries[0].explanations == [] and entries[0].scores == []
    assert entries[1].source == "src"
    assert entries[1].explanations == [make_explanation(1)]
    assert entries[1].scores == [make_score(1)]


def test_cache_call_log_and_batches(store: CatalogStore) -> None:
    ledger = store.ledger
    assert ledger.cache_get("k1") is None
    ledger.cache_put("k1", {"text": "hi", "prompt_tokens": 3}, backend="openai", model="m", request={"x": 1})
    ledger.cache_put("k1", {"text": "hi again"}, backend="openai", model="m", request={"x": 1})
    assert ledger.cache_get("k1") == {"text": "hi again"}
    ledger.cache_delete("k1")
    assert ledger.cache_get("k1") is None

    ledger.log_llm_call(LLMCall(backend="openai", model="m", status="ok", run_id="r1", cost_usd=0.25))
    ledger.log_llm_call(LLMCall(backend="openai", model="m", status="ok", run_id="r2", cost_usd=0.5))
    ledger.log_llm_call(LLMCall(backend="openai", model="m", status="error", run_id="r2", error="HTTP 500"))
    assert ledger.total_cost() == pytest.approx(0.75)
    assert ledger.total_cost("r2") == pytest.approx(0.5)
    assert ledger.total_cost("never") == 0.0
    assert [(c["status"], c["error"]) for c in ledger.llm_calls("r2")] == [("ok", None), ("error", "HTTP 500")]

    ledger.put_batch("b1", backend="openai", model="m", requests={"k2": {"q": 2}, "k3": {"q": 3}}, reserved_usd=0.5)
    [open_batch] = ledger.open_batches("openai", "m")
    assert (open_batch.batch_id, open_batch.reserved_usd) == ("b1", 0.5) and ledger.open_batches("openai", "x") == []
    assert ledger.batch_requests("b1") == {"k2": {"q": 2}, "k3": {"q": 3}}
    outcomes = [
        BatchOutcome(key="k2", status="ok", request={"q": 2}, response={"text": "two"}),
        BatchOutcome(key="k3", status="failed", request={"q": 3}, error="expired"),
    ]
    ledger.finish_batch("b1", outcomes, [LLMCall(backend="openai", model="m", status="ok", cost_usd=0.125)])
    assert ledger.open_batches("openai", "m") == [] and ledger.batch_requests("b1") == {}  # requests dropped
    assert ledger.cache_get("k2") == {"text": "two"} and ledger.cache_get("k3") is None
    assert ledger.total_cost() == pytest.approx(0.875)
    items = ledger.db.execute("SELECT key, status, error FROM llm_batch_items ORDER BY key").fetchall()
    assert items == [("k2", "ok", None), ("k3", "failed", "expired")]


def test_reopened_store_resumes_where_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    with open_store(path) as first:
        first.put_units("src", [make_unit("feature", 0)])
        first.put_explanation("src", make_explanation(0))
    with open_store(path) as second:
        assert second.explanations("src") == [make_explanation(0)]
        assert second.unit_keys("src") == [("feature", 0)]


def test_plain_tables_readable_without_autointerp(tmp_path: Path) -> None:
    """What Datasette sees: ordinary tables (JSON text, packed arrays as blobs), even in an empty store."""
    path = tmp_path / "run.db"
    open_store(path).close()
    conn = sqlite3.connect(path)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert {"sources", "units", "examples", "explanations", "scores", "llm_calls", "llm_cache", "runs"} <= tables


def test_unusable_files_give_one_clear_error(tmp_path: Path) -> None:
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_text("this is not a database, just text long enough to be a header " * 20)
    with pytest.raises(StoreError, match="not a usable autointerp store"):
        open_store(not_sqlite)
    with pytest.raises(UserError, match="does not exist"):
        open_store(tmp_path / "missing-folder" / "run.db")

    newer = tmp_path / "newer.db"
    with open_store(newer) as s:
        s.db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    with pytest.raises(StoreError, match="newer autointerp"):
        open_store(newer)


_WRITER = textwrap.dedent(
    """
    import sys
    from tests.test_store import make_unit
    from autointerp.store import open_store
    store = open_store(sys.argv[1])
    batch = 0
    while True:  # write batches of 20 units until killed
        store.put_units("src", [make_unit("feature", batch * 20 + i, n_examples=40) for i in range(20)])
        batch += 1
    """
)


def test_killed_writer_leaves_a_consistent_store(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    open_store(path).close()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=env, cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and writer.poll() is None:
            conn = sqlite3.connect(path)
            n = conn.execute("SELECT COUNT(*) FROM units").fetchone()[0]
            conn.close()
            if n >= 40:
                break
            time.sleep(0.05)
        assert writer.poll() is None, "writer exited early"
        writer.send_signal(signal.SIGKILL)  # mid-batch, most likely
    finally:
        writer.kill()
        writer.wait()

    with open_store(path) as store:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys = store.unit_keys("src")
        assert len(keys) >= 40 and len(keys) % 20 == 0  # whole batches only
        counts = store.db.execute("SELECT count FROM examples").fetchall()
        assert len(counts) == len(keys) and {c[0] for c in counts} == {40}


def test_failed_explanations_are_kept(store: CatalogStore) -> None:
    failed = make_explanation(3).model_copy(update={"text": "", "failed": True, "error": "HTTP 500 x5"})
    store.put_explanation("src", failed)
    assert store.explanations("src") == [failed]


def test_store_from_before_a_record_field_existed_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with open_store(path) as old:
        old.db.execute("ALTER TABLE explanations DROP COLUMN prompt_version")
        old.db.execute(
            'INSERT INTO explanations (source, kind, "index", settings_hash, text, explainer) '
            "VALUES ('src', 'neuron', 1, 'h', 'old text', 'offline')"
        )
    with open_store(path) as reopened:
        assert "prompt_version" in reopened.db["explanations"].columns_dict
        [explanation] = reopened.explanations("src")
        assert explanation.text == "old text" and explanation.prompt_version is None
        reopened.put_explanation("src", make_explanation(2))
        assert reopened.explanations("src", index=2) == [make_explanation(2)]
