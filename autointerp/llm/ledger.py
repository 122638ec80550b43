"""What an LLM client needs from persistent storage: a response cache, a call log, its provider batches.

Clients depend on this Protocol only, so the LLM layer knows nothing of catalogs; the catalog's SQLite
file provides one (autointerp.store.ledger.SQLiteLedger), and a client without a ledger neither caches
nor logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel

CallStatus = Literal["ok", "error", "cached"]


class LLMCall(BaseModel):
    """One attempt at one request (or one cache hit), as the call log keeps it. `error` is redacted
    by the client before it gets here; no field ever holds a key."""

    backend: str
    model: str
    status: CallStatus
    run_id: str | None = None
    base_url: str | None = None
    request_hash: str | None = None
    attempt: int = 1
    http_status: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    error: str | None = None


class BatchOutcome(BaseModel):
    """What a collected batch gave for one request."""

    key: str
    status: Literal["ok", "invalid", "failed"]
    request: dict[str, Any]  # as sent: stored beside an "ok" answer in the response cache
    response: dict[str, Any] | None = None  # a ChatResponse ("ok" and "invalid")
    error: str | None = None


class OpenBatch(BaseModel):
    """A submitted batch not collected yet."""

    batch_id: str
    reserved_usd: float  # held in the budget until it is collected


class LLMLedger(Protocol):
    def cache_get(self, key: str) -> dict[str, Any] | None:
        """The stored response for a request hash, or None."""
        ...

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
        """Remember a response; `request` (messages and parameters, never a key) aids browsing.
        `call`, the attempt that got it, is logged in the same write (one commit per answer)."""
        ...

    def cache_delete(self, key: str) -> None:
        """Forget a cached response that proved unusable, so a later run asks again."""
        ...

    def log_llm_call(self, call: LLMCall) -> None:
        """Append one attempt to the call log."""
        ...

    def put_batch(
        self, batch_id: str, *, backend: str, model: str, requests: Mapping[str, dict[str, Any]], reserved_usd: float
    ) -> None:
        """Remember a submitted provider batch and its requests (cache key -> request), so a restarted
        run collects it instead of paying again."""
        ...

    def open_batches(self, backend: str, model: str) -> list[OpenBatch]:
        """This model's batches submitted and not collected yet, oldest first."""
        ...

    def batch_requests(self, batch_id: str) -> dict[str, dict[str, Any]]:
        """The requests a batch carries (cache key -> request as sent), to read its answers."""
        ...

    def finish_batch(self, batch_id: str, outcomes: list[BatchOutcome], calls: list[LLMCall]) -> None:
        """In one transaction: cache the "ok" answers, log `calls`, record each outcome and mark the
        batch collected, so a kill mid-way leaves it to be collected again, never counted twice."""
        ...
