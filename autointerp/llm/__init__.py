"""LLM backends behind one interface (`LLMClient` in base.py); build one with `make_llm_client`."""

from autointerp.llm.base import ChatMessage, ChatRequest, ChatResponse, LLMClient, ToolCall, ToolSpec
from autointerp.llm.budget import Budget, BudgetExceeded
from autointerp.llm.errors import (
    InvalidReplyError,
    LLMAccessError,
    LLMCallError,
    LLMUnreachableError,
    MalformedResponseError,
    MissingAPIKeyError,
    UnpricedModelError,
)
from autointerp.llm.factory import LLMSpecError, make_llm_client, parse_spec
from autointerp.llm.retry import RetryPolicy

__all__ = [
    "Budget",
    "BudgetExceeded",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "InvalidReplyError",
    "LLMAccessError",
    "LLMCallError",
    "LLMClient",
    "LLMSpecError",
    "LLMUnreachableError",
    "MalformedResponseError",
    "MissingAPIKeyError",
    "RetryPolicy",
    "ToolCall",
    "ToolSpec",
    "UnpricedModelError",
    "make_llm_client",
    "parse_spec",
]
