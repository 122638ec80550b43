"""The LLM ledger in the catalog's SQLite file: response cache, call log, provider batches and their items.

Implements autointerp.llm.ledger.LLMLedger for the clients, plus the reads the pipeline needs (what a
run spent). API keys never reach this file: nothing here takes one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlite_utils

from autointerp.store.rows import dumps, loads, now
from autointerp.store.schema import LLM_BATCH_ITEMS, LLM_BATCHES, LLM_CACHE, LLM_CALLS

if TYPE_CHECKING:  # importing autointerp.llm loads both provider SDKs (~6 s); the store needs neither
    from autointerp.llm.ledger import BatchOutcome, LLMCall, OpenBatch


_CALL_COLUMNS = [c for c in LLM_CALLS.columns if c != "id"]
_INSERT_CALL = LLM_CALLS.insert_sql(omit=("id",))


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
        self,
        key: str,
        response: dict[str, Any],
        *,
        backend: str,
        model: str,
        request: dict[str, Any],
        call: LLMCall | None = None,
    ) -> None:
        with self.db.atomic():
            self.db.execute(LLM_CACHE.insert_sql(), [key, backend, model, dumps(request), dumps(response), now()])
            if call is not None:
                self.log_llm_call(call)

    def log_llm_call(self, call: LLMCall) -> None:
        row = call.model_dump()
        row["time"] = now()
        row["latency_s"] = round(call.latency_s, 4)
        with self.db.atomic():
            self.db.execute(_INSERT_CALL, [row[c] for c in _CALL_COLUMNS])

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

    def put_batch(
        self, batch_id: str, *, backend: str, model: str, requests: Mapping[str, dict[str, Any]], reserved_usd: float
    ) -> None:
        stamp = now()
        with self.db.atomic():
            self.db.execute(
                LLM_BATCHES.insert_sql(),
                [batch_id, backend, model, len(requests), "submitted", stamp, stamp, reserved_usd],
            )
            self.db.conn.executemany(
                LLM_BATCH_ITEMS.insert_sql(),
                [[batch_id, key, "pending", None, dumps(request)] for key, request in requests.items()],
            )

    def open_batches(self, backend: str, model: str) -> list[OpenBatch]:
        from autointerp.llm.ledger import OpenBatch  # only batch runs ask, and they have loaded the SDKs

        rows = self.db.execute(
            "SELECT batch_id, reserved_usd FROM llm_batches WHERE backend = ? AND model = ? AND status = 'submitted' "
            "ORDER BY rowid",
            [backend, model],
        )
        return [OpenBatch(batch_id=batch_id, reserved_usd=reserved or 0.0) for batch_id, reserved in rows]

    def batch_requests(self, batch_id: str) -> dict[str, dict[str, Any]]:
        rows = self.db.execute("SELECT key, request FROM llm_batch_items WHERE batch_id = ?", [batch_id])
        return {key: loads(request) for key, request in rows if request is not None}

    def finish_batch(self, batch_id: str, outcomes: list[BatchOutcome], calls: list[LLMCall]) -> None:
        row = self.db.execute("SELECT backend, model FROM llm_batches WHERE batch_id = ?", [batch_id]).fetchone()
        with self.db.atomic():
            for outcome in outcomes:
                if outcome.status == "ok" and outcome.response is not None:
                    self.cache_put(outcome.key, outcome.response, backend=row[0], model=row[1], request=outcome.request)
                self.db.execute(
                    "UPDATE llm_batch_items SET status = ?, error = ?, request = NULL WHERE batch_id = ? AND key = ?",
                    [outcome.status, outcome.error, batch_id, outcome.key],
                )
            for call in calls:
                self.log_llm_call(call)
            self.db.execute(
                "UPDATE llm_batches SET status = 'collected', updated_at = ? WHERE batch_id = ?", [now(), batch_id]
            )
