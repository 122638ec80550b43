"""Why an LLM call did not give an answer.

Two families, on purpose: `LLMCallError` is one request failing (after retries), which a stage records
against that unit and moves on; the `UserError` ones (no key, key or model refused, budget spent) stop
the whole stage with one clear message, because every further call would fail the same way.
"""

from __future__ import annotations

from autointerp.errors import UserError


class LLMCallError(Exception):
    """One request failed for good: retries exhausted, or a non-retryable answer such as HTTP 400."""

    def __init__(self, message: str, *, status_code: int | None = None, attempts: int = 1):
        super().__init__(message)
        self.status_code = status_code
        self.attempts = attempts


class MalformedResponseError(LLMCallError):
    """The server answered, but not with a body we can read (bad JSON, missing fields)."""


class MissingAPIKeyError(UserError):
    """The environment variable holding a provider key is not set."""


class LLMAccessError(UserError):
    """The provider refused the key or the model (HTTP 401, 403, 404): every call would fail alike."""
