"""The catalog file's schema, pinned column by column, and the upgrade of a file written by schema 2
(tests/data/catalog_v2.db, made by the store before the split into catalog and ledger)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from pydantic import BaseModel

from autointerp.records import Explanation, Score
from autointerp.store import SCHEMA_VERSION, StoreError, open_store
from autointerp.store.schema import EXPLANATIONS, SCORES, TABLES, Table
from tests.test_store import make_explanation, make_score, make_unit

V2_FIXTURE = Path(__file__).parent / "data" / "catalog_v2.db"

# name TYPE, with the primary key's columns marked pk1, pk2, ... in key order. Column order is not
# pinned: an upgraded file has its added columns at the end.
SCHEMA = {
    "meta": "key TEXT pk1, value TEXT",
    "runs": "run_id TEXT pk1, started_at TEXT, updated_at TEXT, status TEXT, config TEXT, command TEXT",
    "sources": "name TEXT pk1, config TEXT, created_at TEXT",
    "units": "source TEXT pk1, kind TEXT pk2, index INTEGER pk3, tokens_seen INTEGER, active_count INTEGER, "
    "density REAL, max_activation REAL, stats TEXT, promoted_tokens TEXT, suppressed_tokens TEXT, top_neurons TEXT",
    "examples": "source TEXT pk1, kind TEXT pk2, index INTEGER pk3, count INTEGER, packed BLOB",
    "windows": "source TEXT pk1, window_id INTEGER pk2, tokens TEXT",
    "explanations": "source TEXT pk1, kind TEXT pk2, index INTEGER pk3, text TEXT, explainer TEXT, model TEXT, "
    "prompt_version TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd REAL, raw_response TEXT, "
    "settings_hash TEXT pk4, failed INTEGER, error TEXT, meta TEXT, created_at TEXT",
    "scores": "source TEXT pk1, kind TEXT pk2, index INTEGER pk3, explanation_settings_hash TEXT pk5, "
    "scorer TEXT pk4, simulator TEXT, value REAL, failed INTEGER, error TEXT, parts TEXT, details BLOB, "
    "prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd REAL, settings_hash TEXT pk6, created_at TEXT",
    "llm_calls": "id INTEGER pk1, time TEXT, run_id TEXT, backend TEXT, model TEXT, base_url TEXT, "
    "request_hash TEXT, attempt INTEGER, status TEXT, http_status INTEGER, prompt_tokens INTEGER, "
    "completion_tokens INTEGER, cost_usd REAL, latency_s REAL, error TEXT",
    "llm_batches": "batch_id TEXT pk1, backend TEXT, model TEXT, n_requests INTEGER, status TEXT, "
    "submitted_at TEXT, updated_at TEXT, reserved_usd REAL",
    "llm_batch_items": "batch_id TEXT pk1, key TEXT pk2, status TEXT, error TEXT, request TEXT",
    "llm_cache": "key TEXT pk1, backend TEXT, model TEXT, request TEXT, response TEXT, created_at TEXT",
    "leases": "source TEXT pk1, task TEXT pk2, kind TEXT pk3, index INTEGER pk4, owner TEXT, expires_at REAL",
    "unit_links": "source TEXT pk1, kind TEXT pk2, index INTEGER pk3, parent_source TEXT pk4, parent_index INTEGER, "
    "parent_size INTEGER, relation TEXT pk5, decoder_cosine REAL, activation_correlation REAL",
}
# The full-text index of explanations: one virtual table (FTS5 keeps its own shadow tables beside it).
VIRTUAL = {
    "explanations_fts": "CREATE VIRTUAL TABLE explanations_fts USING fts5(text, content='explanations', "
    "content_rowid='rowid', tokenize='porter unicode61')"
}
INDEXES = {
    "idx_llm_calls_run_id": "llm_calls(run_id)",
    "idx_llm_batch_items_key": "llm_batch_items(key)",
    "idx_unit_links_parent_source_parent_index": "unit_links(parent_source, parent_index)",
}


def described(path: Path) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Every plain table's columns as "name TYPE [pkN]" and every index as "table(columns)", read by
    SQLite. Virtual tables and FTS5's shadow tables are left to `virtual_tables`."""
    conn = sqlite3.connect(path)
    virtual = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL%'")]
    tables = [
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'")
        if not any(r[0].startswith(f"{v}_") for v in virtual)
    ]
    columns = {
        table: {
            f"{name} {sql_type}" + (f" pk{pk}" if pk else "")
            for _, name, sql_type, _, _, pk in conn.execute(f'PRAGMA table_info("{table}")')
        }
        for table in tables
    }
    indexes = {}
    for name, table in conn.execute(
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ):
        cols = [r[2] for r in conn.execute(f'PRAGMA index_info("{name}")')]
        indexes[name] = f"{table}({', '.join(cols)})"
    conn.close()
    return columns, indexes


def virtual_tables(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    found = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL%'").fetchall())
    conn.close()
    return found


def pinned() -> dict[str, set[str]]:
    return {table: set(text.split(", ")) for table, text in SCHEMA.items()}


def test_a_new_catalog_has_exactly_the_pinned_schema(tmp_path: Path) -> None:
    open_store(tmp_path / "new.db").close()
    columns, indexes = described(tmp_path / "new.db")
    assert columns == pinned()
    assert indexes == INDEXES
    assert virtual_tables(tmp_path / "new.db") == VIRTUAL
    assert [t.name for t in TABLES] == list(SCHEMA)


@pytest.mark.parametrize(("model", "table"), [(Explanation, EXPLANATIONS), (Score, SCORES)])
def test_every_record_field_has_its_column(model: type[BaseModel], table: Table) -> None:
    fields = set(model.model_fields) - {"unit_kind", "unit_index"}
    assert set(table.columns) == fields | {"source", "kind", "index", "created_at"}


@pytest.fixture
def v2_catalog(tmp_path: Path) -> Path:
    path = tmp_path / "v2.db"
    shutil.copy(V2_FIXTURE, path)
    return path


def test_a_schema_2_catalog_is_upgraded_in_place_with_its_data(v2_catalog: Path) -> None:
    before, _ = described(v2_catalog)
    assert "command" not in {c.split()[0] for c in before["runs"]}  # the fixture really is the old layout
    with open_store(v2_catalog) as store:
        assert store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION
        )
        assert store.unit_keys("src") == [("feature", 0), ("neuron", 1)]
        assert store.get_unit("src", "feature", 0) == make_unit("feature", 0, n_examples=4)
        [explanation] = store.explanations("src")
        assert explanation == make_explanation(0).model_copy(update={"meta": {"named": 3}})
        assert store.scores("src") == [make_score(0)]
        assert [(r["run_id"], r["command"], r["status"]) for r in store.runs()] == [
            ("run", "run", "done"),
            ("explain", "explain", "running"),
        ]
        assert store.ledger.cache_get("k1") == {"text": "hi"}
        assert store.ledger.total_cost("explain") == pytest.approx(0.25)
        assert [b.batch_id for b in store.ledger.open_batches("openai", "m")] == ["b1"]
        run_id = store.new_run("explain", {"explainer": "offline"})
        assert [r["run_id"] for r in store.runs()][-1] == run_id
    after, indexes = described(v2_catalog)
    assert after == pinned() and indexes == INDEXES


def test_runs_get_new_ids_and_keep_their_history(tmp_path: Path) -> None:
    with open_store(tmp_path / "c.db") as store:
        first = store.new_run("explain", {"explainer": "offline"})
        second = store.new_run("explain", {"explainer": "openai:gpt-4o-mini"})
        store.set_run_status(first, "done")
        assert first != second and "-explain-" in first
        runs = store.runs()
        assert [(r["run_id"], r["command"], r["status"]) for r in runs] == [
            (first, "explain", "done"),
            (second, "explain", "running"),
        ]
        assert runs[1]["config"] == {"explainer": "openai:gpt-4o-mini"}


def test_catalogs_this_version_cannot_read_give_one_clear_error(v2_catalog: Path) -> None:
    conn = sqlite3.connect(v2_catalog)
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"older autointerp \(schema 1\).*harvest into a new catalog"):
        open_store(v2_catalog)
    assert described(v2_catalog)[0]["runs"] == pinned()["runs"] - {"command TEXT"}  # left untouched
