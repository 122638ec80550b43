"""What every backend does around the wire call: cache, budget, concurrency, retries, cost, call log.

A backend subclass supplies only `_make_sdk` (build the official SDK client) and `_send` (one request
through it, parsed into a ChatResponse). Everything a run relies on for cost and resumability lives
here once, so the OpenAI and Anthropic paths cannot drift apart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import weakref
from collections.abc import Awaitable
from typing import Any, TypeVar

from autointerp.llm.base import ChatRequest, ChatResponse
from autointerp.llm.budget import Budget
from autointerp.llm.errors import LLMAccessError, LLMCallError, MalformedResponseError
from autointerp.llm.ledger import CallStatus, LLMCall, LLMLedger
from autointerp.llm.pricing import ModelPrice, cost_usd
from autointerp.llm.redact import redact, safe_url
from autointerp.llm.retry import SDK_ERRORS, RetryPolicy, call_with_retries, status_code_of

log = logging.getLogger("autointerp.llm")
T = TypeVar("T")


def request_cache_key(backend: str, base_url: str | None, request: ChatRequest) -> str:
    """A hash of everything that shapes the answer: backend, endpoint, model, messages, parameters."""
    payload = {"backend": backend, "base_url": safe_url(base_url), "request": request.model_dump(mode="json")}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class BaseLLMClient:
    """The shared half of every backend; see the module docstring."""

    backend: str = ""  # "openai", "anthropic", "openai-compatible"
    api_key_env: str = ""  # named in auth errors, so the user knows which variable to fix
    supports_logprobs: bool = False

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        ledger: LLMLedger | None = None,
        budget: Budget | None = None,
        concurrency: int = 8,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        prices: dict[str, ModelPrice] | None = None,
        run_id: str | None = None,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.model = model
        self.name = f"{self.backend}:{model}"
        self.base_url = base_url
        self.ledger = ledger
        self.budget = budget
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.prices = prices
        self.run_id = run_id
        self._api_key = api_key  # held in memory only; never logged, stored or hashed
        # SDK clients and semaphores belong to one event loop; a pipeline may run several loops.
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, asyncio.Semaphore]] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:  # no key in reprs, tracebacks or logs
        return f"{type(self).__name__}(name={self.name!r}, base_url={safe_url(self.base_url)!r})"

    # ---- backend hooks -----------------------------------------------------------------------

    def _make_sdk(self) -> Any:
        raise NotImplementedError

    async def _send(self, sdk: Any, request: ChatRequest) -> tuple[ChatResponse, float]:
        """One wire call; returns the parsed response (without cost) and its cost in USD."""
        raise NotImplementedError

    # ---- the call ----------------------------------------------------------------------------

    def _for_loop(self) -> tuple[Any, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        found = self._per_loop.get(loop)
        if found is None:
            found = (self._make_sdk(), asyncio.Semaphore(self.concurrency))
            self._per_loop[loop] = found
        return found

    def with_model(self, request: ChatRequest) -> ChatRequest:
        """The request as sent: an empty model means this client's model."""
        return request.model_copy(update={"model": request.model or self.model})

    def cache_key(self, request: ChatRequest) -> str:
        """The response-cache key `complete()` uses for this request."""
        return request_cache_key(self.backend, self.base_url, self.with_model(request))

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Answer from the cache if this exact request was answered before; else call (within the
        budget and the concurrency limit, with retries), log, price and cache the answer.

        Raises LLMCallError (this request failed), LLMAccessError (key/model refused),
        BudgetExceeded (no call started).
        """
        request = self.with_model(request)
        key = request_cache_key(self.backend, self.base_url, request)
        if self.ledger is not None:
            hit = self.ledger.cache_get(key)
            if hit is not None:
                self.log_call(key, status="cached", attempt=0, response=ChatResponse(**hit))
                return ChatResponse(**{**hit, "cached": True, "cost_usd": 0.0})
        if self.budget is not None:
            self.budget.check()
        sdk, semaphore = self._for_loop()
        async with semaphore:
            if self.budget is not None:
                self.budget.check()  # others may have spent it while this one waited
            try:
                response = await call_with_retries(
                    lambda attempt: self._attempt(sdk, request, key, attempt), self.retry, label=self.name
                )
            except SDK_ERRORS as exc:
                raise self._translate(exc) from exc
        self.remember(request, key, response)
        return response

    def forget(self, request: ChatRequest) -> None:
        """Drop this request's cached answer: the caller found it unusable, and a later run should
        pay for a fresh one rather than replay the same failure for free."""
        if self.ledger is not None:
            self.ledger.cache_delete(self.cache_key(request))

    def remember(self, request: ChatRequest, key: str, response: ChatResponse) -> None:
        """Count a paid response against the budget and cache it (live calls and batch results)."""
        if self.budget is not None:
            self.budget.add(response.cost_usd)
        if self.ledger is not None:
            self.ledger.cache_put(
                key,
                response.model_dump(mode="json"),
                backend=self.backend,
                model=request.model,
                request=request.model_dump(mode="json"),
            )

    async def _attempt(self, sdk: Any, request: ChatRequest, key: str, attempt: int) -> ChatResponse:
        started = time.perf_counter()
        try:
            response, cost = await self._send(sdk, request)
        except ValueError as exc:  # bad JSON or missing fields in a 200 body
            error = MalformedResponseError(f"{self.name}: unreadable response body: {exc}", attempts=attempt)
            self.log_call(key, status="error", attempt=attempt, latency=time.perf_counter() - started, exc=error)
            raise error from exc
        except Exception as exc:
            self.log_call(key, status="error", attempt=attempt, latency=time.perf_counter() - started, exc=exc)
            raise
        response.cost_usd = cost
        self.log_call(key, status="ok", attempt=attempt, latency=time.perf_counter() - started, response=response)
        return response

    def _cost(self, model: str, prompt_tokens: int, completion_tokens: int, **kwargs: Any) -> float:
        return cost_usd(model, prompt_tokens, completion_tokens, self.prices, **kwargs)

    def _translate(self, exc: Exception) -> Exception:
        """Turn an SDK exception into LLMAccessError (stop the stage) or LLMCallError (this unit)."""
        code = status_code_of(exc)
        detail = self._redact(str(exc))
        if code in (401, 403):
            return LLMAccessError(
                f"{self.name}: the provider refused the API key (HTTP {code}); check {self.api_key_env}: {detail}"
            )
        if code == 404:
            return LLMAccessError(
                f"{self.name}: not found (HTTP 404); check the model name and base URL "
                f"({safe_url(self.base_url) or 'default'}): {detail}"
            )
        where = f" at {safe_url(self.base_url)}" if self.base_url else ""
        return LLMCallError(
            f"{self.name}{where}: {type(exc).__name__}: {detail}", status_code=code, attempts=self.retry.max_attempts
        )

    def _redact(self, text: str) -> str:
        return redact(text, (self._api_key,))

    def log_call(
        self,
        key: str,
        *,
        status: CallStatus,
        attempt: int,
        latency: float = 0.0,
        response: ChatResponse | None = None,
        exc: BaseException | None = None,
        error: str | None = None,
    ) -> None:
        """Append one attempt to the ledger's call log (no ledger: nothing to do)."""
        if self.ledger is None:
            return
        if exc is not None:
            error = f"{type(exc).__name__}: {exc}"
        self.ledger.log_llm_call(
            LLMCall(
                run_id=self.run_id,
                backend=self.backend,
                model=self.model,
                base_url=safe_url(self.base_url),
                request_hash=key,
                attempt=attempt,
                status=status,
                http_status=status_code_of(exc) if exc else None,
                prompt_tokens=response.prompt_tokens if response else 0,
                completion_tokens=response.completion_tokens if response else 0,
                cost_usd=response.cost_usd if response and status == "ok" else 0.0,
                latency_s=latency,
                error=self._redact(error) if error else None,
            )
        )

    async def aclose(self) -> None:
        """Close the SDK client of the running loop (others close when their loop is collected)."""
        found = self._per_loop.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].close()


async def closing(work: Awaitable[T], *users: object) -> T:
    """Await `work`, then close the connections of the LLM clients that `users` (explainers,
    simulators) hold, in this event loop: an SDK client belongs to the loop that made it, so a stage
    run by asyncio.run must close it before that loop ends."""
    try:
        return await work
    finally:
        for user in users:
            client = getattr(user, "client", None)
            if isinstance(client, BaseLLMClient):
                await client.aclose()
