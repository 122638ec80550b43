"""The LLM ledger in the catalog's SQLite file: response cache, call log, submitted batches.

Implements autointerp.llm.ledger.LLMLedger for the clients, plus the reads the pipeline needs (what a
run spent). API keys never reach this file: nothing here takes one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlite_utils

from autointerp.store.rows import dumps, loads, now
from autointerp.store.schema import LLM_BATCHES, LLM_CACHE, LLM_CALLS

if TYPE_CHECKING:  # importing autointerp.llm loads both provider SDKs (~6 s); the store needs neither
    from autointerp.llm.ledger import LLMCall


class SQLiteLedger:
    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    def cache_get(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT response FROM llm_cache WHERE key = ?", [key]).fetchone()
        return loads(row[0]) if row else None

    def cache_delete(self, key: str) -> None:
        with self.db.atomic():
            self.db.execute("DELETE FROM llm_cache WHERE key = ?", [key])

    def cache_put(
        self, key: str, response: dict[str, Any], *, backend: str, model: str, request: dict[str, Any]
    ) -> None:
        with self.db.atomic():
            self.db.execute(LLM_CACHE.insert_sql(), [key, backend, model, dumps(request), dumps(response), now()])

    def log_llm_call(self, call: LLMCall) -> None:
        row = call.model_dump()
        row["time"] = now()
        row["latency_s"] = round(call.latency_s, 4)
        columns = [c for c in LLM_CALLS.columns if c != "id"]
        with self.db.atomic():
            self.db.execute(LLM_CALLS.insert_sql(omit=("id",)), [row[c] for c in columns])

    def llm_calls(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """The call log (one run's, or all), oldest first."""
        sql, params = "SELECT * FROM llm_calls", []
        if run_id is not None:
            sql, params = sql + " WHERE run_id = ?", [run_id]
        return list(self.db.query(sql + " ORDER BY id", params))

    def total_cost(self, run_id: str | None = None) -> float:
        """USD spent on LLM calls (all runs, or one)."""
        sql, params = "SELECT COALESCE(SUM(cost_usd), 0) FROM llm_calls", []
        if run_id is not None:
            sql, params = sql + " WHERE run_id = ?", [run_id]
        return float(self.db.execute(sql, params).fetchone()[0])

    def put_batch(self, batch_id: str, *, backend: str, model: str, n_requests: int, status: str) -> None:
        existing = self.db.execute("SELECT submitted_at FROM llm_batches WHERE batch_id = ?", [batch_id]).fetchone()
        stamp = now()
        with self.db.atomic():
            self.db.execute(
                LLM_BATCHES.insert_sql(),
                [batch_id, backend, model, n_requests, status, existing[0] if existing else stamp, stamp],
            )

    def batches(self, status: str | None = None) -> list[dict[str, Any]]:
        """Submitted batches (those with `status`, or all), oldest first."""
        sql, params = "SELECT * FROM llm_batches", []
        if status is not None:
            sql, params = sql + " WHERE status = ?", [status]
        return list(self.db.query(sql + " ORDER BY submitted_at", params))
