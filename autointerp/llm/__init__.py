"""LLM backends behind one interface (`LLMClient` in base.py); build one with `make_llm_client`."""

from autointerp.llm.base import ChatMessage, ChatRequest, ChatResponse, LLMClient, TokenLogprob, TopLogprob
from autointerp.llm.budget import Budget, BudgetExceeded
from autointerp.llm.errors import LLMAccessError, LLMCallError, MalformedResponseError, MissingAPIKeyError
from autointerp.llm.factory import LLMSpecError, make_llm_client, parse_spec
from autointerp.llm.retry import RetryPolicy

__all__ = [
    "Budget",
    "BudgetExceeded",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "LLMAccessError",
    "LLMCallError",
    "LLMClient",
    "LLMSpecError",
    "MalformedResponseError",
    "MissingAPIKeyError",
    "RetryPolicy",
    "TokenLogprob",
    "TopLogprob",
    "make_llm_client",
    "parse_spec",
]
