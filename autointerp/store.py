"""The catalog store: one SQLite file per run holding every stage's results.

Each stage writes here and asks here what is already done, so a killed run resumes without losing or
repeating paid work. Plain tables (JSON in TEXT columns) so the file opens in Datasette as it is.
WAL mode plus one transaction per batch means a killed process leaves either the whole batch or none.
API keys never reach this file: nothing here takes one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_args

import orjson
import sqlite_utils
from pydantic import BaseModel

from autointerp.errors import UserError
from autointerp.records import (
    ActivationExample,
    CatalogEntry,
    Explanation,
    NeuronWeight,
    Score,
    TokenWeight,
    UnitHarvest,
    UnitKind,
    UnitStats,
)

SCHEMA_VERSION = 2  # 2: example tokens moved to the windows table


class StoreError(UserError):
    """The store file cannot be used (not a SQLite file, newer schema, ...)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _dumps(value: Any) -> str:
    """Compact JSON text (orjson: the store writes and reads millions of small arrays)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


_loads = orjson.loads


def _dumps_activations(values: list[float]) -> str:
    """Activations as compact JSON: exact zeros (most of a sparse feature's) written as `0`."""
    return _dumps([0 if v == 0 else v for v in values])


# Column definitions, created up front so an empty store already has its schema (Datasette, queries).
_TABLES: dict[str, tuple[dict[str, type], tuple[str, ...]]] = {
    "meta": ({"key": str, "value": str}, ("key",)),
    "runs": (
        {"run_id": str, "started_at": str, "updated_at": str, "status": str, "config": str},
        ("run_id",),
    ),
    "sources": ({"name": str, "config": str, "created_at": str}, ("name",)),
    "units": (
        {
            "source": str,
            "kind": str,
            "index": int,
            "tokens_seen": int,
            "active_count": int,
            "density": float,
            "max_activation": float,
            "stats": str,
            "promoted_tokens": str,
            "suppressed_tokens": str,
            "top_neurons": str,
        },
        ("source", "kind", "index"),
    ),
    "examples": (
        {
            "source": str,
            "kind": str,
            "index": int,
            "split": str,
            "sampling": str,
            "window_id": int,
            "position": int,  # order within the unit's example list, kept on round trip
            "quantile": int,
            "max_activation": float,
            "start": int,  # the example's tokens are windows.tokens[start : start + len(activations)]
            "activations": str,
        },
        ("source", "kind", "index", "split", "sampling", "window_id"),
    ),
    # Token text is stored once per window, not once per example: every unit's examples come from
    # the same few thousand windows, so this is most of the file otherwise. Positions no example
    # has covered are null.
    "windows": ({"source": str, "window_id": int, "tokens": str}, ("source", "window_id")),
    # explanations and scores: one column per record field, derived below (_record_columns), so a
    # field added to the record is stored without touching this module.
    "explanations": ({}, ("source", "kind", "index", "settings_hash")),
    "scores": ({}, ("source", "kind", "index", "scorer", "explanation_settings_hash", "settings_hash")),
    "llm_calls": (
        {
            "id": int,
            "time": str,
            "run_id": str,
            "backend": str,
            "model": str,
            "base_url": str,
            "request_hash": str,
            "attempt": int,
            "status": str,  # "ok", "error" or "cached"
            "http_status": int,
            "prompt_tokens": int,
            "completion_tokens": int,
            "cost_usd": float,
            "latency_s": float,
            "error": str,
        },
        ("id",),
    ),
    "llm_batches": (
        {
            "batch_id": str,
            "backend": str,
            "model": str,
            "n_requests": int,
            "status": str,  # "submitted" until collected, then "collected" (or the provider's end state)
            "submitted_at": str,
            "updated_at": str,
            "note": str,
        },
        ("batch_id",),
    ),
    "llm_cache": (
        {"key": str, "backend": str, "model": str, "request": str, "response": str, "created_at": str},
        ("key",),
    ),
}

_SCALAR_TYPES = {str: str, int: int, float: float, bool: int}


def _record_columns(model: type[BaseModel]) -> tuple[dict[str, type], set[str]]:
    """SQL columns for a unit-level record (unit_kind/unit_index become kind/index) and the set of
    fields stored as JSON text (lists, dicts, unions of non-scalars)."""
    columns: dict[str, type] = {"source": str, "kind": str, "index": int}
    json_fields: set[str] = set()
    for name, field in model.model_fields.items():
        if name in ("unit_kind", "unit_index"):
            continue
        args = [a for a in get_args(field.annotation) if a is not type(None)] or [field.annotation]
        sql_type = _SCALAR_TYPES.get(args[0]) if len(args) == 1 else None
        if sql_type is None:
            json_fields.add(name)
            sql_type = str
        columns[name] = sql_type
    columns["created_at"] = str
    return columns, json_fields


_EXPLANATION_COLUMNS, _EXPLANATION_JSON = _record_columns(Explanation)
_SCORE_COLUMNS, _SCORE_JSON = _record_columns(Score)
_TABLES["explanations"] = (_EXPLANATION_COLUMNS, _TABLES["explanations"][1])
_TABLES["scores"] = (_SCORE_COLUMNS, _TABLES["scores"][1])


def _record_row(source: str, record: BaseModel, columns: dict[str, type], json_fields: set[str]) -> tuple:
    data = record.model_dump(mode="json")
    data["kind"] = data.pop("unit_kind")
    data["index"] = data.pop("unit_index")
    data["source"] = source
    data["created_at"] = _now()
    for name in json_fields:
        data[name] = _dumps(data[name])
    return tuple(int(v) if isinstance(v, bool) else v for v in (data.get(c) for c in columns))


def _row_record(model: type[BaseModel], row: dict[str, Any], json_fields: set[str]) -> Any:
    fields = model.model_fields
    data: dict[str, Any] = {"unit_kind": row["kind"], "unit_index": row["index"]}
    for name, value in row.items():
        if name not in fields:
            continue  # source, kind, index, created_at, or a column of a field since removed
        if value is None and type(None) not in get_args(fields[name].annotation):
            continue  # NULL in a column added after this row was written: use the field's default
        if value is not None and name in json_fields:
            value = _loads(value)
        elif fields[name].annotation is bool:
            value = bool(value)
        data[name] = value
    return model.model_validate(data)


_UNIT_COLUMNS = list(_TABLES["units"][0])
_EXAMPLE_COLUMNS = list(_TABLES["examples"][0])


def _insert_sql(table: str, columns: list[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    return f'INSERT OR REPLACE INTO "{table}" ({names}) VALUES ({marks})'


class CatalogStore:
    """All reads and writes of one run's SQLite file.

    Writes are idempotent: writing the same key twice replaces the row. Bulk writes run in one
    transaction, so a crash mid-batch leaves the previous state intact.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # parsed window tokens, shared by the many units whose examples come from the same windows
        self._windows: dict[tuple[str, int], list[str | None]] = {}
        if self.path.parent and not self.path.parent.exists():
            raise StoreError(f"cannot create store {self.path}: folder {self.path.parent} does not exist")
        try:
            self.db = sqlite_utils.Database(self.path)
            self.db.execute("PRAGMA busy_timeout = 10000")
            self.db.enable_wal()
            # NORMAL is durable in WAL mode against process crashes (only power loss can drop the
            # last commits), and makes the many small log/cache commits cheap.
            self.db.execute("PRAGMA synchronous = NORMAL")
            # A large harvest batch grows the WAL file to its size; shrink it back after checkpoints.
            self.db.execute("PRAGMA journal_size_limit = 67108864")
            self._create_schema()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a usable autointerp store: {e}") from e

    # ---- setup -------------------------------------------------------------------------------

    def _create_schema(self) -> None:
        for name, (columns, pk) in _TABLES.items():
            self.db[name].create(columns, pk=pk if len(pk) > 1 else pk[0], if_not_exists=True)
            table = self.db[name]
            missing = {c: t for c, t in columns.items() if c not in table.columns_dict}
            for column, column_type in missing.items():  # a store written before a field existed
                table.add_column(column, column_type)
        self.db["examples"].create_index(["source", "kind", "index", "position"], if_not_exists=True)
        self.db["llm_calls"].create_index(["run_id"], if_not_exists=True)
        found = self._meta_get("schema_version")
        if found is None:
            self._meta_put("schema_version", str(SCHEMA_VERSION))
        elif int(found) < 2:
            raise StoreError(
                f"{self.path} was written by an older autointerp (schema {found}) whose examples this "
                "one cannot read; harvest into a new catalog"
            )
        elif int(found) > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer autointerp (schema {found}, this one reads "
                f"{SCHEMA_VERSION}); upgrade autointerp"
            )

    def _meta_get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def _meta_put(self, key: str, value: str) -> None:
        with self.db.atomic():
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> CatalogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- runs and sources --------------------------------------------------------------------

    def put_run(self, run_id: str, config: dict[str, Any], status: str = "running") -> None:
        """Record a run's full configuration (keys are never part of a config)."""
        existing = self.db.execute("SELECT started_at FROM runs WHERE run_id = ?", [run_id]).fetchone()
        started = existing[0] if existing else _now()
        with self.db.atomic():
            self.db.execute(
                "INSERT OR REPLACE INTO runs (run_id, started_at, updated_at, status, config) "
                "VALUES (?, ?, ?, ?, ?)",
                [run_id, started, _now(), status, _dumps(config)],
            )

    def set_run_status(self, run_id: str, status: str) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?", [status, _now(), run_id]
            )

    def runs(self) -> list[dict[str, Any]]:
        """Every run recorded here, oldest first, with its config parsed."""
        rows = self.db.query("SELECT * FROM runs ORDER BY started_at")
        return [{**row, "config": _loads(row["config"])} for row in rows]

    def put_source(self, name: str, config: dict[str, Any]) -> None:
        """Record what a source is (model, hook, SAE, harvest settings)."""
        with self.db.atomic():
            self.db.execute(
                "INSERT OR REPLACE INTO sources (name, config, created_at) VALUES (?, ?, ?)",
                [name, _dumps(config), _now()],
            )

    def sources(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT name FROM sources ORDER BY name")]

    def source_config(self, name: str) -> dict[str, Any]:
        row = self.db.execute("SELECT config FROM sources WHERE name = ?", [name]).fetchone()
        if row is None:
            known = ", ".join(self.sources()) or "none"
            raise StoreError(f"no source named {name!r} in {self.path} (known: {known})")
        return _loads(row[0])

    # ---- units and examples ------------------------------------------------------------------

    def put_units(self, source: str, harvests: Iterable[UnitHarvest]) -> int:
        """Write (or replace) units with their examples in one transaction; returns how many.

        A replaced unit loses its old examples, so a re-harvest never mixes windows of two harvests.
        """
        unit_rows: list[tuple] = []
        example_rows: list[tuple] = []
        window_tokens: dict[int, dict[int, str]] = {}
        for h in harvests:
            unit_rows.append(
                (
                    source,
                    h.kind,
                    h.index,
                    h.stats.tokens_seen,
                    h.stats.active_count,
                    h.stats.density,
                    h.stats.max_activation,
                    h.stats.model_dump_json(),
                    _dumps([t.model_dump() for t in h.promoted_tokens]),
                    _dumps([t.model_dump() for t in h.suppressed_tokens]),
                    _dumps([n.model_dump() for n in h.top_neurons]),
                )
            )
            for position, e in enumerate(h.examples):
                known = window_tokens.setdefault(e.window_id, {})
                for offset, token in enumerate(e.tokens):
                    known[e.start + offset] = token
                example_rows.append(
                    (
                        source,
                        h.kind,
                        h.index,
                        e.split,
                        e.sampling,
                        e.window_id,
                        position,
                        e.quantile,
                        max(e.activations) if e.activations else 0.0,
                        e.start,
                        _dumps_activations(e.activations),
                    )
                )
        conn = self.db.conn
        self._windows.clear()
        with self.db.atomic():
            conn.executemany(
                'DELETE FROM examples WHERE source = ? AND kind = ? AND "index" = ?',
                [row[:3] for row in unit_rows],
            )
            conn.executemany(_insert_sql("units", _UNIT_COLUMNS), unit_rows)
            conn.executemany(_insert_sql("examples", _EXAMPLE_COLUMNS), example_rows)
            conn.executemany(
                _insert_sql("windows", ["source", "window_id", "tokens"]),
                [(source, wid, _dumps(self._overlay_window(source, wid, known))) for wid, known in window_tokens.items()],
            )
        return len(unit_rows)

    def _overlay_window(self, source: str, window_id: int, known: dict[int, str]) -> list[str | None]:
        """The stored window's tokens with these positions written over them (never fewer known)."""
        row = self.db.execute(
            "SELECT tokens FROM windows WHERE source = ? AND window_id = ?", [source, window_id]
        ).fetchone()
        tokens: list[str | None] = _loads(row[0]) if row else []
        length = max(len(tokens), max(known) + 1 if known else 0)
        tokens.extend([None] * (length - len(tokens)))
        for position, token in known.items():
            tokens[position] = token
        return tokens

    def unit_keys(self, source: str, kind: UnitKind | None = None) -> list[tuple[UnitKind, int]]:
        """(kind, index) of every stored unit of a source, sorted."""
        sql = 'SELECT kind, "index" FROM units WHERE source = ?'
        params: list[Any] = [source]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return [(k, i) for k, i in self.db.execute(sql + ' ORDER BY kind, "index"', params)]

    def iter_units(
        self, source: str, kind: UnitKind | None = None, indices: Iterable[int] | None = None
    ) -> Iterator[UnitHarvest]:
        """Units of a source with all their examples, sorted by (kind, index); loads one at a time."""
        wanted = set(indices) if indices is not None else None
        keys = [k for k in self.unit_keys(source, kind) if wanted is None or k[1] in wanted]
        for unit_kind, index in keys:
            harvest = self.get_unit(source, unit_kind, index)
            if harvest is not None:  # deleted between listing and reading: skip
                yield harvest

    def get_unit(self, source: str, kind: UnitKind, index: int) -> UnitHarvest | None:
        row = self.db.execute(
            'SELECT stats, promoted_tokens, suppressed_tokens, top_neurons FROM units '
            'WHERE source = ? AND kind = ? AND "index" = ?',
            [source, kind, index],
        ).fetchone()
        if row is None:
            return None
        stats, promoted, suppressed, neurons = row
        rows = self.db.execute(
            "SELECT e.window_id, e.start, w.tokens, e.activations, e.split, e.sampling, e.quantile "
            "FROM examples e JOIN windows w ON w.source = e.source AND w.window_id = e.window_id "
            'WHERE e.source = ? AND e.kind = ? AND e."index" = ? ORDER BY e.position',
            [source, kind, index],
        ).fetchall()
        examples = []
        for window_id, start, tokens, activations, split, sampling, quantile in rows:
            window = self._windows.get((source, window_id))
            if window is None:
                window = self._windows[(source, window_id)] = _loads(tokens)
            acts = _loads(activations)
            # model_construct: these rows were validated on the way in; re-validating ~100 examples
            # per unit would cost more than reading them.
            examples.append(
                ActivationExample.model_construct(
                    window_id=window_id,
                    start=start,
                    tokens=window[start : start + len(acts)],
                    activations=acts,
                    split=split,
                    sampling=sampling,
                    quantile=quantile,
                )
            )
        return UnitHarvest(
            kind=kind,
            index=index,
            stats=UnitStats.model_validate_json(stats),
            examples=examples,
            promoted_tokens=[TokenWeight(**t) for t in _loads(promoted)],
            suppressed_tokens=[TokenWeight(**t) for t in _loads(suppressed)],
            top_neurons=[NeuronWeight(**n) for n in _loads(neurons)],
        )

    # ---- explanations ------------------------------------------------------------------------

    def has_explanation(
        self, source: str, kind: UnitKind, index: int, settings_hash: str, *, include_failed: bool = False
    ) -> bool:
        """Whether this unit is explained with these settings. Failed explanations count as not done
        unless asked, so a re-run retries them."""
        failed = "failed" if "failed" in _EXPLANATION_COLUMNS else "0"
        row = self.db.execute(
            f'SELECT {failed} FROM explanations WHERE source = ? AND kind = ? AND "index" = ? '
            "AND settings_hash = ?",
            [source, kind, index, settings_hash],
        ).fetchone()
        return row is not None and (include_failed or not row[0])

    def put_explanation(self, source: str, explanation: Explanation) -> None:
        self.put_explanations(source, [explanation])

    def put_explanations(self, source: str, explanations: Iterable[Explanation]) -> None:
        rows = [_record_row(source, e, _EXPLANATION_COLUMNS, _EXPLANATION_JSON) for e in explanations]
        with self.db.atomic():
            self.db.conn.executemany(_insert_sql("explanations", list(_EXPLANATION_COLUMNS)), rows)

    def explanations(
        self, source: str, kind: UnitKind | None = None, index: int | None = None
    ) -> list[Explanation]:
        """Stored explanations (failed ones included), sorted by unit then settings hash."""
        sql, params = self._unit_filter("explanations", source, kind, index)
        return [
            _row_record(Explanation, row, _EXPLANATION_JSON)
            for row in self.db.query(sql + ' ORDER BY kind, "index", settings_hash', params)
        ]

    # ---- scores ------------------------------------------------------------------------------

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
        sql = (
            'SELECT failed FROM scores WHERE source = ? AND kind = ? AND "index" = ? AND scorer = ? '
            "AND explanation_settings_hash = ? AND settings_hash = ?"
        )
        row = self.db.execute(
            sql, [source, kind, index, scorer, explanation_settings_hash, settings_hash]
        ).fetchone()
        return row is not None and (include_failed or not row[0])

    def put_score(self, source: str, score: Score) -> None:
        self.put_scores(source, [score])

    def put_scores(self, source: str, scores: Iterable[Score]) -> None:
        rows = [_record_row(source, sc, _SCORE_COLUMNS, _SCORE_JSON) for sc in scores]
        with self.db.atomic():
            self.db.conn.executemany(_insert_sql("scores", list(_SCORE_COLUMNS)), rows)

    def scores(
        self,
        source: str,
        scorer: str | None = None,
        kind: UnitKind | None = None,
        index: int | None = None,
    ) -> list[Score]:
        """Stored scores (failed ones included), sorted by unit, scorer and hashes."""
        sql, params = self._unit_filter("scores", source, kind, index)
        if scorer is not None:
            sql += " AND scorer = ?"
            params.append(scorer)
        order = ' ORDER BY kind, "index", scorer, explanation_settings_hash, settings_hash'
        return [_row_record(Score, row, _SCORE_JSON) for row in self.db.query(sql + order, params)]

    # ---- the whole catalog -------------------------------------------------------------------

    def catalog_entries(self, source: str, kind: UnitKind | None = None) -> Iterator[CatalogEntry]:
        """Each unit with its explanations and scores, sorted by (kind, index)."""
        for harvest in self.iter_units(source, kind):
            yield CatalogEntry(
                source=source,
                harvest=harvest,
                explanations=self.explanations(source, harvest.kind, harvest.index),
                scores=self.scores(source, kind=harvest.kind, index=harvest.index),
            )

    def _unit_filter(
        self, table: str, source: str, kind: UnitKind | None, index: int | None
    ) -> tuple[str, list[Any]]:
        sql = f"SELECT * FROM {table} WHERE source = ?"
        params: list[Any] = [source]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        if index is not None:
            sql += ' AND "index" = ?'
            params.append(index)
        return sql, params

    # ---- LLM response cache and call log -----------------------------------------------------

    def cache_get(self, key: str) -> dict[str, Any] | None:
        """The stored response for a request hash, or None."""
        row = self.db.execute("SELECT response FROM llm_cache WHERE key = ?", [key]).fetchone()
        return _loads(row[0]) if row else None

    def cache_delete(self, key: str) -> None:
        """Forget a cached response (one that proved unusable, so a later run asks again)."""
        with self.db.atomic():
            self.db.execute("DELETE FROM llm_cache WHERE key = ?", [key])

    def cache_put(
        self,
        key: str,
        response: dict[str, Any],
        *,
        backend: str = "",
        model: str = "",
        request: dict[str, Any] | None = None,
    ) -> None:
        """Remember a response; `request` (messages and parameters, never a key) aids browsing."""
        with self.db.atomic():
            self.db.execute(
                "INSERT OR REPLACE INTO llm_cache (key, backend, model, request, response, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [key, backend, model, _dumps(request) if request else None, _dumps(response), _now()],
            )

    def log_llm_call(
        self,
        *,
        backend: str,
        model: str,
        status: str,
        run_id: str | None = None,
        base_url: str | None = None,
        request_hash: str | None = None,
        attempt: int = 1,
        http_status: int | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost_usd: float = 0.0,
        latency_s: float = 0.0,
        error: str | None = None,
    ) -> None:
        """Append one attempt to the call log. Callers pass error text already redacted."""
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO llm_calls (time, run_id, backend, model, base_url, request_hash, attempt, "
                "status, http_status, prompt_tokens, completion_tokens, cost_usd, latency_s, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    _now(),
                    run_id,
                    backend,
                    model,
                    base_url,
                    request_hash,
                    attempt,
                    status,
                    http_status,
                    prompt_tokens,
                    completion_tokens,
                    cost_usd,
                    round(latency_s, 4),
                    error,
                ],
            )

    def llm_calls(self, run_id: str | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM llm_calls", []
        if run_id is not None:
            sql, params = sql + " WHERE run_id = ?", [run_id]
        return list(self.db.query(sql + " ORDER BY id", params))

    def put_batch(
        self, batch_id: str, *, backend: str, model: str, n_requests: int, status: str, note: str = ""
    ) -> None:
        """Remember a provider batch, so a restarted run collects it instead of paying again."""
        existing = self.db.execute(
            "SELECT submitted_at FROM llm_batches WHERE batch_id = ?", [batch_id]
        ).fetchone()
        with self.db.atomic():
            self.db.execute(
                "INSERT OR REPLACE INTO llm_batches (batch_id, backend, model, n_requests, status, "
                "submitted_at, updated_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [batch_id, backend, model, n_requests, status, existing[0] if existing else _now(), _now(), note],
            )

    def batches(self, status: str | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM llm_batches", []
        if status is not None:
            sql, params = sql + " WHERE status = ?", [status]
        return list(self.db.query(sql + " ORDER BY submitted_at", params))

    def total_cost(self, run_id: str | None = None) -> float:
        """USD spent on LLM calls (all runs, or one)."""
        sql, params = "SELECT COALESCE(SUM(cost_usd), 0) FROM llm_calls", []
        if run_id is not None:
            sql, params = sql + " WHERE run_id = ?", [run_id]
        return float(self.db.execute(sql, params).fetchone()[0])


def open_store(path: str | Path) -> CatalogStore:
    """Open (creating if needed) the store at `path`."""
    return CatalogStore(path)


__all__ = ["CatalogStore", "StoreError", "open_store", "SCHEMA_VERSION"]
