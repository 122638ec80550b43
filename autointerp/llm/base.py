"""The one interface every LLM backend implements, and the request/response records it speaks.

Explainers and simulators build a `ChatRequest`, await `client.complete(request)`, and read the
`ChatResponse`. Backends (OpenAI, Anthropic, OpenAI-compatible base URLs) hide wire differences.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    # The provider's model name, without the "openai:" / "anthropic:" prefix; "" means the client's own.
    model: str = ""
    messages: list[ChatMessage]
    max_tokens: int = 512
    temperature: float = 0.0
    logprobs: bool = False  # ask for per-token logprobs (OpenAI-style backends only)
    top_logprobs: int = 0  # 0..20
    # When set, ask the backend for JSON matching this schema (structured output / tool use).
    json_schema: dict | None = None


class ChatResponse(BaseModel):
    text: str
    # Where logprobs were asked: for each number that ends a line of the text, the character offset
    # where it ends -> its expected value over the alternatives "0".."10" (see logprobs.py). Only
    # these are kept: the full top-k lists of every token cost CPU to parse and ~100 KB to cache.
    # None when the backend gives no logprobs.
    line_end_numbers: dict[int, float] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached: bool = False  # served from the response cache: no call was made
    model: str = ""
    finish_reason: str | None = None


class LLMClient(Protocol):
    """Anything that answers a chat request. `name` is e.g. "openai:gpt-4o-mini"."""

    name: str
    supports_logprobs: bool

    async def complete(self, request: ChatRequest) -> ChatResponse: ...


def forget_unusable(client: LLMClient, requests: list[ChatRequest]) -> None:
    """Tell a caching client that these requests' answers were unusable (if it caches at all)."""
    forget = getattr(client, "forget", None)
    if forget is not None:
        for request in requests:
            forget(request)
