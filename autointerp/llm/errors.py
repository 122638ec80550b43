"""Why an LLM call did not give an answer.

Two families, on purpose: `LLMCallError` is one request failing (after retries), which a stage records
against that unit and moves on; the `UserError` ones (no key, key or model refused, budget spent) stop
the whole stage with one clear message, because every further call would fail the same way.
"""

from __future__ import annotations

from autointerp.errors import UserError
from autointerp.llm.base import ChatResponse


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


class InvalidReplyError(LLMCallError):
    """The server answered, but the answer is cut off (it hit the output limit) or does not match the
    asked-for schema: a failure of this request, never cached, so a re-run asks again. `response` is
    the paid-for answer, for its usage and for a caller that re-asks with the reason."""

    def __init__(self, message: str, response: ChatResponse, *, attempts: int = 1):
        super().__init__(message, attempts=attempts)
        self.response = response


class LLMUnreachableError(UserError):
    """The stage's first calls could not reach the server or were all refused: every further call
    would fail alike, so the stage stops with one error instead of thousands of failure rows."""


class UnpricedModelError(UserError):
    """A budget was set for a model without a price: the cap could never fire."""
