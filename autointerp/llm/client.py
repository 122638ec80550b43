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
from collections.abc import AsyncGenerator, Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from autointerp.llm.base import ChatRequest, ChatResponse
from autointerp.llm.budget import Budget
from autointerp.llm.errors import (
    InvalidReplyError,
    LLMAccessError,
    LLMCallError,
    LLMUnreachableError,
    MalformedResponseError,
)
from autointerp.llm.ledger import CallStatus, LLMCall, LLMLedger
from autointerp.llm.pricing import ModelPrice, cost_usd, prompt_token_bound, worst_case_cost
from autointerp.llm.rate_limit import SLOW_DOWN, AdaptiveConcurrency, Gate, rate_signal
from autointerp.llm.redact import credentials_apart, redact, safe_url
from autointerp.llm.retry import (
    SDK_ERRORS,
    RetryPolicy,
    call_with_retries,
    is_retryable,
    response_headers,
    status_code_of,
)
from autointerp.llm.validate import reply_problem

log = logging.getLogger("autointerp.llm")
T = TypeVar("T")


def request_cache_key(backend: str, request: ChatRequest) -> str:
    """A hash of everything that shapes the answer: the provider, then the model, messages and
    parameters. Not the base URL: the same model asked the same thing through another address (a
    proxy, another port) gives the same answer, and paying for it again is waste."""
    payload = {"backend": backend, "request": request.model_dump(mode="json")}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# Refusals of a request (not of the key or model) that, before any call succeeded, stop the stage.
FAIL_FAST_AFTER = 3


@dataclass
class _LoopState:
    """What belongs to one event loop: the SDK client, the gate to the wire, the calls in flight."""

    sdk: Any
    gate: Gate
    closer: AsyncGenerator[None, None]  # see `_closed_with_its_loop`
    in_flight: dict[str, asyncio.Future[ChatResponse]] = field(default_factory=dict)


async def _closed_with_its_loop(sdk: Any) -> AsyncGenerator[None, None]:
    """Waits, suspended, for the end of the event loop it first ran in, then closes the SDK's
    connections: asyncio.run closes every async generator still open before it closes its loop,
    so a caller that never closes the client (`asyncio.run(client.complete(...))`) leaves no
    connection behind, nor aiohttp's "Unclosed client session" complaint."""
    try:
        yield
    finally:
        await sdk.close()


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
        self.model = model
        self.name = f"{self.backend}:{model}"
        self.base_url = base_url
        self.ledger = ledger
        self.budget = budget
        self.concurrency = concurrency
        # How many of the `concurrency` slots the server's rate limits leave open, learnt from its
        # answers and kept across the event loops a run makes one after another.
        self.rate_control = AdaptiveConcurrency(concurrency)
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.prices = prices
        self.run_id = run_id
        self._api_key = api_key  # held in memory only; never logged, stored or hashed
        # SDK clients and semaphores belong to one event loop; a pipeline may run several loops.
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self._answered = False  # some live call has succeeded: the server and the request shape work
        self._refused = 0  # requests refused (4xx) before any call succeeded
        self._fatal: LLMUnreachableError | None = None  # once set, every call raises it at once

    def __repr__(self) -> str:  # no key in reprs, tracebacks or logs
        return f"{type(self).__name__}(name={self.name!r}, base_url={safe_url(self.base_url)!r})"

    # ---- backend hooks -----------------------------------------------------------------------

    def _make_sdk(self) -> Any:
        raise NotImplementedError

    def _sdk_options(self, base_url: str | None) -> dict[str, Any]:
        """What either SDK client is built with. max_retries=0: our own policy retries (see
        retry.py), the SDK default would multiply them. Credentials in the URL go as a Basic header
        (see `credentials_apart`)."""
        url, headers = credentials_apart(base_url)
        return {
            "api_key": self._api_key,
            "base_url": url,
            "default_headers": headers,
            "max_retries": 0,
            "timeout": self.timeout_s,
        }

    async def _send(self, sdk: Any, request: ChatRequest) -> tuple[ChatResponse, float, Mapping[str, str]]:
        """One wire call; returns the parsed response (without cost), its cost in USD and the
        response headers (for their rate-limit fields)."""
        raise NotImplementedError

    def max_output_tokens(self, request: ChatRequest) -> int:
        """The output limit sent with this request (and reserved in the budget)."""
        return request.max_tokens

    def prompt_texts(self, request: ChatRequest) -> list[str]:
        """Every text the wire request carries, for counting prompt tokens before sending."""
        texts = [m.content for m in request.messages]
        texts += [json.dumps([c.model_dump() for c in m.tool_calls]) for m in request.messages if m.tool_calls]
        if request.tools is not None:
            texts.append(json.dumps([t.model_dump() for t in request.tools]))
        return [*texts, json.dumps(request.json_schema)] if request.json_schema is not None else texts

    # ---- the call ----------------------------------------------------------------------------

    async def _for_loop(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        found = self._per_loop.get(loop)
        if found is None:
            sdk = self._make_sdk()
            closer = _closed_with_its_loop(sdk)
            await anext(closer)  # its first step ties it to this loop (and never suspends: no race)
            found = _LoopState(sdk, Gate(self.rate_control), closer)
            self._per_loop[loop] = found
        return found

    def with_model(self, request: ChatRequest) -> ChatRequest:
        """The request as sent: an empty model means this client's model."""
        return request.model_copy(update={"model": request.model or self.model})

    def cache_key(self, request: ChatRequest) -> str:
        """The response-cache key `complete()` uses for this request."""
        return request_cache_key(self.backend, self.with_model(request))

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Answer from the cache if this exact request was answered before, or share the answer of an
        identical request in flight; else call (within the budget and the concurrency limit, with
        retries), cache the answer the moment it arrives, log and price it.

        Raises LLMCallError (this request failed; InvalidReplyError for a cut-off or off-schema
        answer), LLMAccessError (key/model refused), LLMUnreachableError (the first calls all
        failed), BudgetExceeded (no call started).
        """
        request = self.with_model(request)
        key = request_cache_key(self.backend, request)
        if self._fatal is not None:
            raise self._fatal
        hit = self._cached(key)
        if hit is not None:
            return hit
        state = await self._for_loop()
        pending = state.in_flight.get(key)
        if pending is not None:  # the same request is on the wire: wait for its answer, pay once
            response = await asyncio.shield(pending)
            self.log_call(key, status="cached", attempt=0, response=response)
            return response.model_copy(update={"cached": True, "cost_usd": 0.0})
        future: asyncio.Future[ChatResponse] = asyncio.get_running_loop().create_future()
        state.in_flight[key] = future
        try:
            response = await self._call(state, request, key)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so an unshared failure is not reported as unhandled
            raise
        else:
            future.set_result(response)
        finally:
            del state.in_flight[key]
        return response

    def _cached(self, key: str) -> ChatResponse | None:
        if self.ledger is None:
            return None
        hit = self.ledger.cache_get(key)
        if hit is None:
            return None
        self.log_call(key, status="cached", attempt=0, response=ChatResponse(**hit))
        return ChatResponse(**{**hit, "cached": True, "cost_usd": 0.0})

    async def _call(self, state: _LoopState, request: ChatRequest, key: str) -> ChatResponse:
        if self.budget is not None:
            self.budget.check()
        try:
            return await call_with_retries(
                lambda attempt: self._attempt(state, request, key, attempt), self.retry, label=self.name
            )
        except SDK_ERRORS as exc:
            raise self._fail_fast(self._translate(exc), exc) from exc

    def _fail_fast(self, error: Exception, exc: Exception) -> Exception:
        """Before any call has succeeded, a dead server or requests refused again and again mean
        every call of the stage would fail: turn the error into one that stops the stage."""
        if self._answered or not isinstance(error, LLMCallError):
            return error
        code = status_code_of(exc)
        if code is None and is_retryable(exc):  # connection refused, DNS, timeouts: retries are spent
            reason = f"cannot reach {safe_url(self.base_url) or 'the provider'}: {error}"
        elif code is not None and 400 <= code < 500 and not is_retryable(exc):
            self._refused += 1
            if self._refused < FAIL_FAST_AFTER:
                return error
            reason = f"the first {self._refused} requests were refused, the last with: {error}"
        else:
            return error
        self._fatal = LLMUnreachableError(f"{self.name}: {reason}; the stage stops (nothing was answered yet)")
        return self._fatal

    def forget(self, request: ChatRequest) -> None:
        """Drop this request's cached answer: the caller found it unusable, and a later run should
        pay for a fresh one rather than replay the same failure for free."""
        if self.ledger is not None:
            self.ledger.cache_delete(self.cache_key(request))

    def _cache_put(self, request: ChatRequest, key: str, response: ChatResponse, attempt: int, latency: float) -> None:
        """Cache an answer and log the call that got it, in one commit. Python-mode dumps: the
        store's JSON writer gives the same text, and mode="json" triples the cost of the
        int-keyed logprob map."""
        if self.ledger is not None:
            call = self.call_record(key, status="ok", attempt=attempt, latency=latency, response=response)
            self.ledger.cache_put(
                key,
                response.model_dump(),
                backend=self.backend,
                model=request.model,
                request=request.model_dump(),
                call=call,
            )

    def worst_case_usd(self, request: ChatRequest) -> float:
        """What this request can cost at most at the live price (its prompt counted generously)."""
        prompt = prompt_token_bound(self.prompt_texts(request))
        return worst_case_cost(request.model, prompt, self.max_output_tokens(request), self.prices)

    async def _reserve(self, request: ChatRequest) -> float:
        """Hold this call's worst-case cost in the budget (raises BudgetExceeded if it cannot fit)."""
        if self.budget is None or not self.budget.limited:
            return 0.0
        return await self.budget.reserve(self.worst_case_usd(request))

    async def _attempt(self, state: _LoopState, request: ChatRequest, key: str, attempt: int) -> ChatResponse:
        async with state.gate.slot() as slot:
            if slot.waited and attempt == 1 and (hit := self._cached(key)) is not None:
                return hit  # another run or process answered it while this one waited for a slot
            reserved = await self._reserve(request)
            paid = 0.0
            started = time.perf_counter()
            try:
                try:
                    response, paid, headers = await self._send(state.sdk, request)
                except ValueError as exc:  # bad JSON or missing fields in a 200 body
                    error = MalformedResponseError(f"{self.name}: unreadable response body: {exc}", attempts=attempt)
                    self.log_call(
                        key, status="error", attempt=attempt, latency=time.perf_counter() - started, exc=error
                    )
                    raise error from exc
                except Exception as exc:
                    slot.leave(rate_signal(status_code_of(exc), response_headers(exc)))
                    self.log_call(key, status="error", attempt=attempt, latency=time.perf_counter() - started, exc=exc)
                    raise
            finally:
                if self.budget is not None:
                    self.budget.settle(reserved, paid)
            slot.leave(rate_signal(200, headers))
        self._answered = True
        response.cost_usd = paid
        latency = time.perf_counter() - started
        problem = reply_problem(request, response)
        if problem is not None:  # paid for, but unusable: logged with its cost, never cached
            invalid = InvalidReplyError(f"{self.name}: {problem}", response, attempts=attempt)
            self.log_call(key, status="error", attempt=attempt, latency=latency, response=response, exc=invalid)
            raise invalid
        self._cache_put(request, key, response, attempt, latency)  # at once: a kill from here on re-pays nothing
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
        if self.ledger is not None:
            self.ledger.log_llm_call(
                self.call_record(
                    key, status=status, attempt=attempt, latency=latency, response=response, exc=exc, error=error
                )
            )

    def call_record(
        self,
        key: str,
        *,
        status: CallStatus,
        attempt: int,
        latency: float = 0.0,
        response: ChatResponse | None = None,
        exc: BaseException | None = None,
        error: str | None = None,
    ) -> LLMCall:
        """One attempt as the call log keeps it, its error redacted."""
        if exc is not None:
            error = f"{type(exc).__name__}: {exc}"
            if status_code_of(exc) in SLOW_DOWN:  # what the client did about it, for `autointerp runs --calls`
                error += f" [{self.rate_control.state(time.monotonic())}]"
        return LLMCall(
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
            cost_usd=response.cost_usd if response and status != "cached" else 0.0,
            latency_s=latency,
            error=self._redact(error) if error else None,
        )

    async def aclose(self) -> None:
        """Close the SDK client of the running loop now. One left open closes when asyncio.run ends
        its loop (`_closed_with_its_loop`); a loop run by other means must close it here: the
        labeling stages close theirs when they end (`close_clients`), other work can run by `closing`."""
        found = self._per_loop.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found.closer.aclose()
        summary = self.rate_control.summary()
        if summary is not None:
            log.warning("%s: %s", self.name, summary)


async def close_clients(*users: object) -> None:
    """Close the connections of the LLM clients that `users` (explainers, simulators) hold, in this
    event loop: an SDK client belongs to the loop that made it, so work run by asyncio.run must
    close it before that loop ends."""
    for user in users:
        client = getattr(user, "client", None)
        if isinstance(client, BaseLLMClient):
            await client.aclose()


async def closing(work: Awaitable[T], *users: object) -> T:
    """Await `work`, then `close_clients(*users)`."""
    try:
        return await work
    finally:
        await close_clients(*users)
