"""Every table of a catalog file, written out in one place, and how an older file is brought up to date.

One SQLite file holds the catalog (sources, units, windows, examples, explanations, scores, runs) and
the LLM ledger (response cache, call log, batches). Plain tables with JSON in TEXT columns, so the file
opens in Datasette as it is. tests/test_store_schema.py pins every column; a change here that is not
additive bumps SCHEMA_VERSION and adds a step to _MIGRATIONS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlite_utils

from autointerp.errors import UserError

# 2: example tokens moved to the windows table.
# 3: runs get generated ids and the command that started them; llm_batches loses its unused note.
SCHEMA_VERSION = 3
OLDEST_READABLE = 2  # a schema-1 file stores example tokens per example, which this code cannot read


class StoreError(UserError):
    """The store file cannot be used (not a SQLite file, newer schema, ...)."""


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, str]  # column -> SQL type, in creation order
    pk: tuple[str, ...]
    json: frozenset[str] = frozenset()  # columns holding JSON text
    indexes: tuple[tuple[str, ...], ...] = field(default=())

    def create_sql(self) -> str:
        lines = [f'"{name}" {sql_type}' for name, sql_type in self.columns.items()]
        lines.append(f"PRIMARY KEY ({_quoted(self.pk)})")
        return f'CREATE TABLE IF NOT EXISTS "{self.name}" (\n   ' + ",\n   ".join(lines) + "\n)"

    def index_sql(self) -> list[str]:
        return [
            f'CREATE INDEX IF NOT EXISTS "idx_{self.name}_{"_".join(cols)}" ON "{self.name}" ({_quoted(cols)})'
            for cols in self.indexes
        ]

    def insert_sql(self, omit: tuple[str, ...] = ()) -> str:
        """INSERT OR REPLACE of every column but `omit`, in `columns` order, with ? placeholders."""
        names = tuple(c for c in self.columns if c not in omit)
        return f'INSERT OR REPLACE INTO "{self.name}" ({_quoted(names)}) VALUES ({", ".join("?" * len(names))})'


def _quoted(columns: tuple[str, ...]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


T, I, R = "TEXT", "INTEGER", "REAL"
UNIT_KEY = {"source": T, "kind": T, "index": I}

META = Table("meta", {"key": T, "value": T}, ("key",))
RUNS = Table(
    "runs",
    {"run_id": T, "started_at": T, "updated_at": T, "status": T, "config": T, "command": T},
    ("run_id",),
    json=frozenset({"config"}),
)
SOURCES = Table("sources", {"name": T, "config": T, "created_at": T}, ("name",), json=frozenset({"config"}))
UNITS = Table(
    "units",
    {
        **UNIT_KEY,
        "tokens_seen": I,
        "active_count": I,
        "density": R,
        "max_activation": R,
        "stats": T,  # UnitStats as JSON
        "promoted_tokens": T,
        "suppressed_tokens": T,
        "top_neurons": T,
    },
    ("source", "kind", "index"),
    json=frozenset({"stats", "promoted_tokens", "suppressed_tokens", "top_neurons"}),
)
EXAMPLES = Table(
    "examples",
    {
        **UNIT_KEY,
        "split": T,  # "explain" or "score"
        "sampling": T,  # "top", "quantile", "random", "silent", "hard_negative"
        "window_id": I,
        "position": I,  # order within the unit's example list, kept on round trip
        "quantile": I,
        "max_activation": R,
        "start": I,  # the example's tokens are windows.tokens[start : start + len(activations)]
        "activations": T,
    },
    ("source", "kind", "index", "split", "sampling", "window_id"),
    json=frozenset({"activations"}),
    indexes=(("source", "kind", "index", "position"),),
)
# Token text is stored once per window, not once per example: every unit's examples come from the same
# few thousand windows, so this is most of the file otherwise. Positions no example has covered are null.
WINDOWS = Table(
    "windows", {"source": T, "window_id": I, "tokens": T}, ("source", "window_id"), json=frozenset({"tokens"})
)
# explanations and scores: the unit key, one column per field of the record (autointerp.records), and
# created_at. A field added to the record needs its column here (a test checks they agree).
EXPLANATIONS = Table(
    "explanations",
    {
        **UNIT_KEY,
        "text": T,
        "explainer": T,
        "model": T,
        "prompt_version": T,
        "prompt_tokens": I,
        "completion_tokens": I,
        "cost_usd": R,
        "raw_response": T,
        "settings_hash": T,
        "failed": I,
        "error": T,
        "meta": T,
        "created_at": T,
    },
    ("source", "kind", "index", "settings_hash"),
    json=frozenset({"meta"}),
)
SCORES = Table(
    "scores",
    {
        **UNIT_KEY,
        "explanation_settings_hash": T,
        "scorer": T,
        "simulator": T,
        "value": R,
        "failed": I,
        "error": T,
        "parts": T,
        "details": T,
        "prompt_tokens": I,
        "completion_tokens": I,
        "cost_usd": R,
        "settings_hash": T,
        "created_at": T,
    },
    ("source", "kind", "index", "scorer", "explanation_settings_hash", "settings_hash"),
    json=frozenset({"parts", "details"}),
)
LLM_CALLS = Table(
    "llm_calls",
    {
        "id": I,
        "time": T,
        "run_id": T,
        "backend": T,
        "model": T,
        "base_url": T,
        "request_hash": T,
        "attempt": I,
        "status": T,  # "ok", "error" or "cached"
        "http_status": I,
        "prompt_tokens": I,
        "completion_tokens": I,
        "cost_usd": R,
        "latency_s": R,
        "error": T,
    },
    ("id",),
    indexes=(("run_id",),),
)
LLM_BATCHES = Table(
    "llm_batches",
    {
        "batch_id": T,
        "backend": T,
        "model": T,
        "n_requests": I,
        "status": T,  # "submitted" until collected, then "collected"
        "submitted_at": T,
        "updated_at": T,
    },
    ("batch_id",),
)
LLM_CACHE = Table(
    "llm_cache",
    {"key": T, "backend": T, "model": T, "request": T, "response": T, "created_at": T},
    ("key",),
    json=frozenset({"request", "response"}),
)

TABLES = (META, RUNS, SOURCES, UNITS, EXAMPLES, WINDOWS, EXPLANATIONS, SCORES, LLM_CALLS, LLM_BATCHES, LLM_CACHE)


def _v2_to_v3(db: sqlite_utils.Database) -> None:
    # The ids of schema-2 runs were the command names ("run", "explain", "score").
    db.execute("UPDATE runs SET command = run_id WHERE command IS NULL")
    if "note" in db["llm_batches"].columns_dict:
        db.execute("ALTER TABLE llm_batches DROP COLUMN note")


# version N -> the step that turns an N file into an N + 1 file (after missing columns are added)
_MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {2: _v2_to_v3}


def prepare(db: sqlite_utils.Database, label: str) -> None:
    """Create the tables of a new file, or bring an older file up to SCHEMA_VERSION in one transaction.

    Raises StoreError for a file this code cannot read (too old, or written by a newer version).
    """
    with db.atomic():  # one transaction: a crash mid-migration leaves the old file as it was
        db.execute(META.create_sql())
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        found = int(row[0]) if row else SCHEMA_VERSION
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"{label} was written by a newer autointerp (schema {found}, this one reads "
                f"{SCHEMA_VERSION}); upgrade autointerp"
            )
        if found < OLDEST_READABLE:
            raise StoreError(
                f"{label} was written by an older autointerp (schema {found}) whose examples this "
                "one cannot read; harvest into a new catalog"
            )
        for table in TABLES:
            db.execute(table.create_sql())
            present = db[table.name].columns_dict
            for column, sql_type in table.columns.items():
                if column not in present:  # an additive change since this file was written
                    db.execute(f'ALTER TABLE "{table.name}" ADD COLUMN "{column}" {sql_type}')
            for sql in table.index_sql():
                db.execute(sql)
        for version in range(found, SCHEMA_VERSION):
            _MIGRATIONS[version](db)
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
