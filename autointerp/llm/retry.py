"""Our retry policy for LLM calls: exponential backoff with jitter, honouring Retry-After.

The SDKs' own retries are switched off (max_retries=0) so this is the only layer that retries;
otherwise attempts multiply. Retryable: 408, 409, 429, 5xx, timeouts, dropped connections and
unreadable bodies. Not retryable: other 4xx (bad request, bad key, unknown model).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import anthropic
import openai
from pydantic import BaseModel, Field
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from autointerp.llm.errors import MalformedResponseError

log = logging.getLogger("autointerp.llm")

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 409, 429})
# What the SDKs raise for anything on the wire. Other exceptions are bugs and are not dressed up as
# a failed call.
SDK_ERRORS = (openai.APIError, anthropic.APIError)


class RetryPolicy(BaseModel):
    """How hard to retry. Tests shrink the waits; production keeps the defaults."""

    max_attempts: int = Field(5, ge=1)
    initial_wait_s: float = Field(1.0, ge=0)  # first backoff; doubles each attempt
    max_wait_s: float = Field(60.0, ge=0)  # cap on the computed backoff
    jitter_s: float = Field(1.0, ge=0)  # uniform 0..jitter added to each backoff
    max_retry_after_s: float = Field(300.0, ge=0)  # cap on a server's Retry-After


def status_code_of(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt could succeed."""
    if isinstance(exc, (openai.APIConnectionError, anthropic.APIConnectionError, MalformedResponseError)):
        return True  # includes timeouts (APITimeoutError subclasses APIConnectionError)
    code = status_code_of(exc)
    if code is None:
        return False
    return code in RETRYABLE_STATUS or code >= 500


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """The server's requested wait: `retry-after-ms`, else `retry-after` as seconds or an HTTP date."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def response_headers(exc: BaseException | None) -> Mapping[str, str] | None:
    """The headers of the answer an SDK error carries (None for a call that got no answer)."""
    response = getattr(exc, "response", None)
    return getattr(response, "headers", None)


def wait_seconds(policy: RetryPolicy, attempt: int, exc: BaseException | None) -> float:
    """The wait before attempt `attempt + 1`: the server's Retry-After if it sent one, else
    exponential backoff plus jitter."""
    requested = retry_after_seconds(response_headers(exc))
    if requested is not None:
        return min(requested, policy.max_retry_after_s)
    backoff = min(policy.initial_wait_s * 2 ** (attempt - 1), policy.max_wait_s)
    return backoff + random.uniform(0, policy.jitter_s)


async def call_with_retries(attempt_fn: Callable[[int], Awaitable[T]], policy: RetryPolicy, *, label: str = "llm") -> T:
    """Await `attempt_fn(attempt_number)` until it succeeds, fails for good, or attempts run out;
    the last exception is re-raised as it is."""

    def _wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return wait_seconds(policy, state.attempt_number, exc)

    def _before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        code = status_code_of(exc) if exc else None
        reason = f"HTTP {code}" if code else type(exc).__name__
        log.warning(
            "%s: %s, retry %d/%d in %.3f s",
            label,
            reason,
            state.attempt_number,
            policy.max_attempts - 1,
            wait,
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=_wait,
        retry=retry_if_exception(is_retryable),
        before_sleep=_before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await attempt_fn(attempt.retry_state.attempt_number)
    raise AssertionError("unreachable: tenacity either returns or re-raises")
