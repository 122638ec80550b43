"""The one interface every LLM backend implements, and the request/response records it speaks.

Explainers and simulators build a `ChatRequest`, await `client.complete(request)`, and read the
`ChatResponse`. Backends (OpenAI, Anthropic, OpenAI-compatible base URLs) hide wire differences.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, model_validator


def _unset(value: object) -> bool:
    """Fields that a plain chat never sets are left out of dumps, so the cache keys of requests made
    before tool calling existed stay what they were."""
    return value is None


class ToolSpec(BaseModel):
    """A function the model may call: its name, what it does, and a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


class ToolCall(BaseModel):
    """One call the model asked for; `id` pairs it with its result in the next request."""

    id: str
    name: str
    arguments: dict[str, Any]


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    # An assistant turn that called tools (repeated in the next request, as both wire formats want).
    tool_calls: list[ToolCall] | None = Field(None, exclude_if=_unset)
    # A "tool" message is the result of the call with this id.
    tool_call_id: str | None = Field(None, exclude_if=_unset)

    @model_validator(mode="after")
    def _tool_result_names_its_call(self) -> ChatMessage:
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("a tool message, and only a tool message, names the tool_call_id it answers")
        return self


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
    # Functions the model may call instead of (or besides) answering in text; not with json_schema.
    tools: list[ToolSpec] | None = Field(None, exclude_if=_unset)

    @model_validator(mode="after")
    def _one_way_to_structure(self) -> ChatRequest:
        if self.tools is not None and self.json_schema is not None:
            raise ValueError("a request asks for a json_schema answer or offers tools, not both")
        return self


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
    tool_calls: list[ToolCall] = []  # the tools the model called, in its order


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
