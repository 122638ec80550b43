"""Anthropic Messages API through the official SDK.

No logprobs exist here, so simulators ask for explicit numbers instead. System messages go into the
top-level `system` parameter (the Messages API has no system role). The current Messages API (SDK 2.x)
takes no sampling temperature, so `request.temperature` is not sent. A JSON schema is enforced through a
forced tool call whose input is the answer; its JSON becomes the response text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anthropic
from anthropic.types import Message

from autointerp.llm.base import ChatMessage, ChatRequest, ChatResponse, ToolCall
from autointerp.llm.client import BaseLLMClient
from autointerp.llm.errors import MalformedResponseError

ANSWER_TOOL = "respond"


class AnthropicClient(BaseLLMClient):
    backend = "anthropic"
    api_key_env = "ANTHROPIC_API_KEY"
    supports_logprobs = False

    def _make_sdk(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            **self._sdk_options(sdk_base_url(self.base_url)), http_client=anthropic.DefaultAioHttpClient()
        )

    def wire_params(self, request: ChatRequest) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": _wire_messages([m for m in request.messages if m.role != "system"]),
        }
        if system:
            params["system"] = system
        if request.tools is not None:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in request.tools
            ]
        if request.json_schema is not None:
            params["tools"] = [
                {
                    "name": ANSWER_TOOL,
                    "description": "Give the answer in this exact structure.",
                    "input_schema": request.json_schema,
                }
            ]
            params["tool_choice"] = {"type": "tool", "name": ANSWER_TOOL}
        return params

    async def _send(
        self, sdk: anthropic.AsyncAnthropic, request: ChatRequest
    ) -> tuple[ChatResponse, float, Mapping[str, str]]:
        # with_raw_response: the SDK's own parsing, plus the headers that carry the rate limits
        answer = await sdk.messages.with_raw_response.create(**self.wire_params(request))
        return (*self.parse_reply(await answer.parse(), request), answer.headers)

    def parse_reply(self, message: Message, request: ChatRequest, *, batch: bool = False) -> tuple[ChatResponse, float]:
        """A message (live or from a batch's results) as our response and its cost."""
        if message.content is None or message.usage is None:
            raise MalformedResponseError(f"{self.name}: response has no content or usage")
        text = _answer_text(message.content, want_tool=request.json_schema is not None)
        usage = message.usage
        prompt_tokens = usage.input_tokens or 0
        completion_tokens = usage.output_tokens or 0
        cache_read = usage.cache_read_input_tokens or 0
        cache_write = usage.cache_creation_input_tokens or 0
        response = ChatResponse(
            text=text,
            logprobs=None,
            prompt_tokens=prompt_tokens + cache_read + cache_write,
            completion_tokens=completion_tokens,
            model=message.model or request.model,
            finish_reason=message.stop_reason,
            tool_calls=[
                ToolCall(id=b.id, name=b.name, arguments=b.input if isinstance(b.input, dict) else {})
                for b in message.content
                if b.type == "tool_use" and b.name != ANSWER_TOOL
            ],
        )
        cost = self._cost(
            request.model,
            prompt_tokens,
            completion_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            batch=batch,
        )
        return response, cost


def sdk_base_url(base_url: str | None) -> str | None:
    """The SDK appends /v1/messages itself; a base URL written with /v1 (as OpenAI's are) would
    double it into a 404, so accept both forms."""
    if base_url is None:
        return None
    trimmed = base_url.rstrip("/")
    return trimmed.removesuffix("/v1")


def _wire_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Messages as the Messages API takes them: an assistant turn's tool calls become tool_use blocks,
    and the results that follow it become tool_result blocks of one user turn."""
    wire: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            if wire and wire[-1]["role"] == "user" and isinstance(wire[-1]["content"], list):
                wire[-1]["content"].append(block)
            else:
                wire.append({"role": "user", "content": [block]})
        elif m.tool_calls:
            text = [{"type": "text", "text": m.content}] if m.content else []
            calls = [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in m.tool_calls]
            wire.append({"role": m.role, "content": text + calls})
        else:
            wire.append({"role": m.role, "content": m.content})
    return wire


def _answer_text(blocks: list[Any], *, want_tool: bool) -> str:
    """The forced tool call's input as JSON when a schema was asked, else the text blocks joined."""
    if want_tool:
        for block in blocks:
            if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == ANSWER_TOOL:
                return json.dumps(block.input)
    texts = [block.text for block in blocks if getattr(block, "type", None) == "text"]
    if want_tool and not texts:
        raise MalformedResponseError("anthropic: response has neither the forced tool call nor text")
    return "".join(texts)
