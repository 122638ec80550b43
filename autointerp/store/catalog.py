"""The catalog store: one SQLite file per run folder holding every stage's results.

Each stage writes here and asks here what is already done, so a killed run resumes without losing or
repeating paid work. WAL mode plus one transaction per batch means a killed process leaves either the
whole batch or none. The same file holds the LLM ledger (`store.ledger`), which the LLM clients use.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import sqlite_utils
from pydantic import BaseModel

from autointerp.records import CatalogEntry, Explanation, Score, UnitHarvest, UnitKind
from autointerp.store import leases, units
from autointerp.store.ledger import SQLiteLedger
from autointerp.store.rows import dumps, loads, now, record_row, row_record
from autointerp.store.schema import EXPLANATIONS, RUNS, SCORES, SOURCES, StoreError, Table, check_ours, prepare


class CatalogStore:
    """All reads and writes of one run folder's SQLite file.

    Writes are idempotent: writing the same key twice replaces the row. Bulk writes run in one
    transaction, so a crash mid-batch leaves the previous state intact.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._windows: units.WindowCache = {}
        if not self.path.parent.exists():
            raise StoreError(f"cannot create store {self.path}: folder {self.path.parent} does not exist")
        try:
            self.db = sqlite_utils.Database(self.path)
            self.db.execute("PRAGMA busy_timeout = 10000")
            check_ours(self.db, str(self.path))  # before WAL or any table: a foreign file stays as it was
            self.db.enable_wal()
            # NORMAL is durable in WAL mode against process crashes (only power loss can drop the
            # last commits), and makes the many small log/cache commits cheap.
            self.db.execute("PRAGMA synchronous = NORMAL")
            # A large harvest batch grows the WAL file to its size; shrink it back after checkpoints.
            self.db.execute("PRAGMA journal_size_limit = 67108864")
            prepare(self.db, str(self.path))
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a usable autointerp store: {e}") from e
        self.ledger = SQLiteLedger(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- runs and sources --------------------------------------------------------------------

    def new_run(self, command: str, config: dict[str, Any]) -> str:
        """Record the start of a run of `command` ("run", "explain", ...) with its full configuration
        (never a key); returns its new id, e.g. "20261130T011419Z-run-3f9a2c". Earlier runs stay."""
        started = datetime.now(UTC)
        run_id = f"{started:%Y%m%dT%H%M%SZ}-{command}-{secrets.token_hex(3)}"
        stamp = started.isoformat(timespec="milliseconds")
        with self.db.atomic():
            self.db.execute(RUNS.insert_sql(), [run_id, stamp, stamp, "running", dumps(config), command])
        return run_id

    def set_run_status(self, run_id: str, status: str) -> None:
        """Mark how a run ended ("done", "stopped: budget", "failed: ...")."""
        with self.db.atomic():
            self.db.execute("UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?", [status, now(), run_id])

    def runs(self) -> list[dict[str, Any]]:
        """Every run recorded here, oldest first, with its config parsed."""
        rows = self.db.query("SELECT * FROM runs ORDER BY started_at, rowid")
        return [{**row, "config": loads(row["config"])} for row in rows]

    def put_source(self, name: str, config: dict[str, Any]) -> None:
        """Record what a source is (model, hook, SAE, harvest settings)."""
        with self.db.atomic():
            self.db.execute(SOURCES.insert_sql(), [name, dumps(config), now()])

    def sources(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT name FROM sources ORDER BY name")]

    def source_config(self, name: str) -> dict[str, Any]:
        row = self.db.execute("SELECT config FROM sources WHERE name = ?", [name]).fetchone()
        if row is None:
            known = ", ".join(self.sources()) or "none"
            raise StoreError(f"no source named {name!r} in {self.path} (known: {known})")
        return loads(row[0])

    # ---- units and examples ------------------------------------------------------------------

    def put_units(self, source: str, harvests: Iterable[UnitHarvest]) -> int:
        """Write (or replace) units with their examples in one transaction; returns how many."""
        return units.write_units(self.db, source, harvests, self._windows)

    def unit_keys(self, source: str, kind: UnitKind | None = None) -> list[tuple[UnitKind, int]]:
        """(kind, index) of every stored unit of a source, sorted."""
        return units.unit_keys(self.db, source, kind)

    def get_unit(self, source: str, kind: UnitKind, index: int, *, examples: bool = True) -> UnitHarvest | None:
        """One unit; `examples=False` leaves its examples out (statistics and weights only)."""
        return units.read_unit(self.db, source, kind, index, self._windows, examples=examples)

    def iter_units(
        self, source: str, kind: UnitKind | None = None, indices: Iterable[int] | None = None, *, examples: bool = True
    ) -> Iterator[UnitHarvest]:
        """Units of a source (with all their examples unless told not), sorted by (kind, index);
        loads one at a time."""
        wanted = set(indices) if indices is not None else None
        keys = [k for k in self.unit_keys(source, kind) if wanted is None or k[1] in wanted]
        for unit_kind, index in keys:
            harvest = self.get_unit(source, unit_kind, index, examples=examples)
            if harvest is not None:  # deleted between listing and reading: skip
                yield harvest

    # ---- explanations and scores -------------------------------------------------------------

    def put_explanation(self, source: str, explanation: Explanation) -> None:
        self.put_explanations(source, [explanation])

    def put_explanations(self, source: str, explanations: Iterable[Explanation]) -> None:
        self._put_records(EXPLANATIONS, source, explanations)

    def explanations(self, source: str, kind: UnitKind | None = None, index: int | None = None) -> list[Explanation]:
        """Stored explanations (failed ones included), sorted by unit then settings hash."""
        sql, params = self._unit_filter("explanations", source, kind, index)
        order = ' ORDER BY kind, "index", settings_hash'
        return [row_record(Explanation, EXPLANATIONS, row) for row in self.db.query(sql + order, params)]

    def has_score(
        self,
        source: str,
        kind: UnitKind,
        index: int,
        scorer: str,
        explanation_settings_hash: str,
        settings_hash: str,
        *,
        include_failed: bool = False,
    ) -> bool:
        """Whether this score is done. Failed scores count as not done unless asked, so a re-run
        retries them."""
        row = self.db.execute(
            'SELECT failed FROM scores WHERE source = ? AND kind = ? AND "index" = ? AND scorer = ? '
            "AND explanation_settings_hash = ? AND settings_hash = ?",
            [source, kind, index, scorer, explanation_settings_hash, settings_hash],
        ).fetchone()
        return row is not None and (include_failed or not row[0])

    # ---- leases: which process labels which unit now ----------------------------------------

    def take_lease(self, source: str, task: str, kind: UnitKind, index: int, owner: str) -> bool:
        """Whether `owner` now holds the unit's lease for `task` (see autointerp/store/leases.py)."""
        return leases.take(self.db, source, task, kind, index, owner)

    def release_lease(self, source: str, task: str, kind: UnitKind, index: int, owner: str) -> None:
        leases.release(self.db, source, task, kind, index, owner)

    def put_score(self, source: str, score: Score) -> None:
        self.put_scores(source, [score])

    def put_scores(self, source: str, scores: Iterable[Score]) -> None:
        self._put_records(SCORES, source, scores)

    def scores(
        self, source: str, scorer: str | None = None, kind: UnitKind | None = None, index: int | None = None
    ) -> list[Score]:
        """Stored scores (failed ones included), sorted by unit, scorer and hashes."""
        sql, params = self._unit_filter("scores", source, kind, index)
        if scorer is not None:
            sql += " AND scorer = ?"
            params.append(scorer)
        order = ' ORDER BY kind, "index", scorer, explanation_settings_hash, settings_hash'
        return [row_record(Score, SCORES, row) for row in self.db.query(sql + order, params)]

    def catalog_entries(
        self, source: str, kind: UnitKind | None = None, *, examples: bool = True
    ) -> Iterator[CatalogEntry]:
        """Each unit with its explanations and scores, sorted by (kind, index). Streams: three
        ordered queries read side by side, one unit in memory at a time. `examples=False` leaves
        the units' examples out, for readers that need only the labels and scores."""
        explanations = _UnitRows(self._ordered(EXPLANATIONS, Explanation, source, kind, "settings_hash"))
        scores = _UnitRows(
            self._ordered(SCORES, Score, source, kind, "scorer, explanation_settings_hash, settings_hash")
        )
        for harvest in self.iter_units(source, kind, examples=examples):
            key = (harvest.kind, harvest.index)
            yield CatalogEntry(
                source=source, harvest=harvest, explanations=explanations.take(key), scores=scores.take(key)
            )

    def _ordered(
        self, table: Table, model: type[Explanation | Score], source: str, kind: UnitKind | None, then: str
    ) -> Iterator[Any]:
        sql, params = self._unit_filter(table.name, source, kind, None)
        for row in self.db.query(f'{sql} ORDER BY kind, "index", {then}', params):
            yield row_record(model, table, row)

    def _put_records(self, table: Table, source: str, records: Iterable[BaseModel]) -> None:
        """Write (or replace) unit-level records in one transaction."""
        rows = [record_row(table, source, r) for r in records]
        with self.db.atomic():
            self.db.conn.executemany(table.insert_sql(), rows)

    def _unit_filter(self, table: str, source: str, kind: UnitKind | None, index: int | None) -> tuple[str, list[Any]]:
        sql = f"SELECT * FROM {table} WHERE source = ?"
        params: list[Any] = [source]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        if index is not None:
            sql += ' AND "index" = ?'
            params.append(index)
        return sql, params


class _UnitRows:
    """Records sorted by unit, handed out one unit's worth at a time to a reader walking the units
    in the same order."""

    def __init__(self, records: Iterator[Any]):
        self._records = records
        self._next = next(records, None)

    def take(self, key: tuple[str, int]) -> list[Any]:
        taken = []
        while self._next is not None and (self._next.unit_kind, self._next.unit_index) <= key:
            if (self._next.unit_kind, self._next.unit_index) == key:
                taken.append(self._next)
            self._next = next(self._records, None)
        return taken
