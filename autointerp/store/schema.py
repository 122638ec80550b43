"""Every table of a catalog file, written out in one place, and how an older file is brought up to date.

One SQLite file holds the catalog (sources, units, windows, examples, explanations, scores, runs) and
the LLM ledger (response cache, call log, batches). Plain tables with JSON in TEXT columns, so the file
opens in Datasette as it is, except the bulk numbers (examples' activations, score details), which are
packed arrays in BLOB columns (autointerp/store/packed.py). tests/test_store_schema.py pins every column; a change here that is not
additive bumps SCHEMA_VERSION and adds a step to _MIGRATIONS.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby

import sqlite_utils
from orjson import loads

from autointerp.errors import UserError
from autointerp.records import ActivationExample, ExampleScore
from autointerp.store import packed

# 2: example tokens moved to the windows table.
# 3: runs get generated ids and the command that started them; llm_batches loses its unused note.
# 4: examples packed one row per unit, score details packed (66 -> ~10 KB per unit in the demo).
SCHEMA_VERSION = 4
OLDEST_READABLE = 2  # a schema-1 file stores example tokens per example, which this code cannot read
# SQLite's header field naming the program that owns a file: "AIcT" as a 32-bit big-endian integer.
APPLICATION_ID = 0x41496354


class StoreError(UserError):
    """The store file cannot be used (not a SQLite file, newer schema, ...)."""


@dataclass(frozen=True)
class Table:
    """One table: the single definition its DDL, its upgrade and its row code are read from."""

    name: str
    columns: dict[str, str]  # column -> SQL type, in creation order
    pk: tuple[str, ...]
    json: frozenset[str] = frozenset()  # columns holding JSON text
    packed: frozenset[str] = frozenset()  # columns holding packed arrays (autointerp/store/packed.py)
    indexes: tuple[tuple[str, ...], ...] = ()

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


TEXT, INTEGER, REAL, BLOB = "TEXT", "INTEGER", "REAL", "BLOB"
UNIT_KEY = {"source": TEXT, "kind": TEXT, "index": INTEGER}

META = Table("meta", {"key": TEXT, "value": TEXT}, ("key",))
RUNS = Table(
    "runs",
    {"run_id": TEXT, "started_at": TEXT, "updated_at": TEXT, "status": TEXT, "config": TEXT, "command": TEXT},
    ("run_id",),
    json=frozenset({"config"}),
)
SOURCES = Table("sources", {"name": TEXT, "config": TEXT, "created_at": TEXT}, ("name",), json=frozenset({"config"}))
UNITS = Table(
    "units",
    {
        **UNIT_KEY,
        "tokens_seen": INTEGER,
        "active_count": INTEGER,
        "density": REAL,
        "max_activation": REAL,
        "stats": TEXT,  # UnitStats as JSON
        "promoted_tokens": TEXT,
        "suppressed_tokens": TEXT,
        "top_neurons": TEXT,
    },
    ("source", "kind", "index"),
    json=frozenset({"stats", "promoted_tokens", "suppressed_tokens", "top_neurons"}),
)
# One row per unit: its examples' windows, starts, splits, samplings, quantiles and activations packed
# into one compressed blob (autointerp/store/packed.py), in the order the harvest listed them.
EXAMPLES = Table(
    "examples",
    {**UNIT_KEY, "count": INTEGER, "packed": BLOB},
    ("source", "kind", "index"),
)
# Token text is stored once per window, not once per example: every unit's examples come from the same
# few thousand windows, so this is most of the file otherwise. Positions no example has covered are null.
WINDOWS = Table(
    "windows",
    {"source": TEXT, "window_id": INTEGER, "tokens": TEXT},
    ("source", "window_id"),
    json=frozenset({"tokens"}),
)
# explanations and scores: the unit key, one column per field of the record (autointerp.records), and
# created_at. A field added to the record needs its column here (a test checks they agree).
EXPLANATIONS = Table(
    "explanations",
    {
        **UNIT_KEY,
        "text": TEXT,
        "explainer": TEXT,
        "model": TEXT,
        "prompt_version": TEXT,
        "prompt_tokens": INTEGER,
        "completion_tokens": INTEGER,
        "cost_usd": REAL,
        "raw_response": TEXT,
        "settings_hash": TEXT,
        "failed": INTEGER,
        "error": TEXT,
        "meta": TEXT,
        "created_at": TEXT,
    },
    ("source", "kind", "index", "settings_hash"),
    json=frozenset({"meta"}),
)
SCORES = Table(
    "scores",
    {
        **UNIT_KEY,
        "explanation_settings_hash": TEXT,
        "scorer": TEXT,
        "simulator": TEXT,
        "value": REAL,
        "failed": INTEGER,
        "error": TEXT,
        "parts": TEXT,
        "details": BLOB,  # packed (autointerp/store/packed.py)
        "prompt_tokens": INTEGER,
        "completion_tokens": INTEGER,
        "cost_usd": REAL,
        "settings_hash": TEXT,
        "created_at": TEXT,
    },
    ("source", "kind", "index", "scorer", "explanation_settings_hash", "settings_hash"),
    json=frozenset({"parts"}),
    packed=frozenset({"details"}),
)
LLM_CALLS = Table(
    "llm_calls",
    {
        "id": INTEGER,
        "time": TEXT,
        "run_id": TEXT,
        "backend": TEXT,
        "model": TEXT,
        "base_url": TEXT,
        "request_hash": TEXT,
        "attempt": INTEGER,
        "status": TEXT,  # "ok", "error" or "cached"
        "http_status": INTEGER,
        "prompt_tokens": INTEGER,
        "completion_tokens": INTEGER,
        "cost_usd": REAL,
        "latency_s": REAL,
        "error": TEXT,
    },
    ("id",),
    indexes=(("run_id",),),
)
LLM_BATCHES = Table(
    "llm_batches",
    {
        "batch_id": TEXT,
        "backend": TEXT,
        "model": TEXT,
        "n_requests": INTEGER,
        "status": TEXT,  # "submitted" until collected, then "collected"
        "submitted_at": TEXT,
        "updated_at": TEXT,
        "reserved_usd": REAL,  # the worst-case cost held in the budget until the batch is collected
    },
    ("batch_id",),
)
# One row per request of a batch, named by its response-cache key (also the batch's custom id).
LLM_BATCH_ITEMS = Table(
    "llm_batch_items",
    {
        "batch_id": TEXT,
        "key": TEXT,
        "status": TEXT,  # "pending", then "ok" (answer in llm_cache), "invalid" (paid, unusable) or "failed"
        "error": TEXT,
        "request": TEXT,  # the request as sent, kept while pending (to read its answer)
    },
    ("batch_id", "key"),
    json=frozenset({"request"}),
    indexes=(("key",),),
)
LLM_CACHE = Table(
    "llm_cache",
    {"key": TEXT, "backend": TEXT, "model": TEXT, "request": TEXT, "response": TEXT, "created_at": TEXT},
    ("key",),
    json=frozenset({"request", "response"}),
)

# Who is labelling which unit now (autointerp/store/leases.py): rows live only while a unit is worked on.
LEASES = Table(
    "leases",
    {"source": TEXT, "task": TEXT, "kind": TEXT, "index": INTEGER, "owner": TEXT, "expires_at": REAL},
    ("source", "task", "kind", "index"),
)

# Feature splitting (autointerp/analysis/splitting.py): each feature's nearest feature in a smaller SAE on the
# same hook, one row per measure that chose it ("cosine" or "correlation"), keyed by the child unit.
UNIT_LINKS = Table(
    "unit_links",
    {
        **UNIT_KEY,
        "parent_source": TEXT,
        "parent_index": INTEGER,
        "parent_size": INTEGER,
        "relation": TEXT,
        "decoder_cosine": REAL,
        "activation_correlation": REAL,
    },
    ("source", "kind", "index", "parent_source", "relation"),
    indexes=(("parent_source", "parent_index"),),
)

# Full-text index of explanation texts (autointerp/query/search.py): an external-content FTS5 table over
# explanations' rowids, rebuilt by its reader whenever the explanations changed since the last build.
EXPLANATIONS_FTS = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS explanations_fts USING fts5("
    "text, content='explanations', content_rowid='rowid', tokenize='porter unicode61')"
)

TABLES = (
    META,
    RUNS,
    SOURCES,
    UNITS,
    EXAMPLES,
    WINDOWS,
    EXPLANATIONS,
    SCORES,
    LLM_CALLS,
    LLM_BATCHES,
    LLM_BATCH_ITEMS,
    LLM_CACHE,
    LEASES,
    UNIT_LINKS,
)


def _v2_to_v3(db: sqlite_utils.Database) -> None:
    # The ids of schema-2 runs were the command names ("run", "explain", "score").
    db.execute("UPDATE runs SET command = run_id WHERE command IS NULL")
    if "note" in db["llm_batches"].columns_dict:
        db.execute("ALTER TABLE llm_batches DROP COLUMN note")


def _v3_to_v4(db: sqlite_utils.Database) -> None:
    # Examples were one row per example with JSON activations; score details were JSON text.
    db.execute('ALTER TABLE examples RENAME TO "examples_v3"')
    db.execute(EXAMPLES.create_sql())
    rows = db.execute(
        'SELECT source, kind, "index", window_id, start, split, sampling, quantile, activations '
        'FROM examples_v3 ORDER BY source, kind, "index", position'
    )
    insert = EXAMPLES.insert_sql()
    for key, group in groupby(rows, key=lambda row: row[:3]):
        examples = [
            ActivationExample.model_construct(
                window_id=window_id,
                start=start,
                tokens=[],
                activations=loads(activations),
                split=split,
                sampling=sampling,
                quantile=quantile,
            )
            for *_, window_id, start, split, sampling, quantile, activations in group
        ]
        db.conn.execute(insert, [*key, len(examples), packed.pack_examples(examples)])
    db.execute("DROP TABLE examples_v3")
    db.execute('ALTER TABLE scores RENAME TO "scores_v3"')
    db.execute(SCORES.create_sql())
    columns = ", ".join(f'"{c}"' for c in SCORES.columns)
    at = list(SCORES.columns).index("details")
    insert = SCORES.insert_sql()
    for row in db.execute(f"SELECT {columns} FROM scores_v3"):
        details = [ExampleScore.model_construct(**d) for d in loads(row[at] or "[]")]
        db.conn.execute(insert, [*row[:at], packed.pack_details(details), *row[at + 1 :]])
    db.execute("DROP TABLE scores_v3")


# version N -> the step that turns an N file into an N + 1 file (after missing columns are added)
_MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {2: _v2_to_v3, 3: _v3_to_v4}
# A file upgraded from before this version is vacuumed once, to give back what packing freed.
_VACUUM_BELOW = 4


def check_ours(db: sqlite_utils.Database, label: str) -> None:
    """Refuse, before anything is written, a SQLite file that another program made.

    Ours carry APPLICATION_ID; files from before it was set are known by their meta table's
    schema_version; a file without any table is new. Anything else is left exactly as it was.
    """
    if db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
        return
    tables = set(db.table_names())
    if not tables:
        return
    try:
        versioned = "meta" in tables and db.execute("SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:  # a foreign table that happens to be called meta
        versioned = None
    if not versioned:
        raise StoreError(
            f"{label} is not an autointerp catalog (a SQLite file with tables {', '.join(sorted(tables)[:5])}); "
            "it was left unchanged: name a new file"
        )


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
        db.execute(EXPLANATIONS_FTS)
        if found < SCHEMA_VERSION:  # packing a large file's examples takes minutes: say why it waits
            print(f"upgrading {label} from catalog schema {found} to {SCHEMA_VERSION}", file=sys.stderr)
        for version in range(found, SCHEMA_VERSION):
            _MIGRATIONS[version](db)
        if row is None or found != SCHEMA_VERSION:  # an up-to-date file is opened without a write
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    if found < _VACUUM_BELOW:
        db.execute("VACUUM")
