"""OpenAI chat completions through the official SDK; also any OpenAI-compatible server by base URL
(vLLM, llama.cpp, Ollama)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx2
import openai
import orjson

from autointerp.llm.base import ChatMessage, ChatRequest, ChatResponse, ToolCall
from autointerp.llm.client import BaseLLMClient
from autointerp.llm.errors import MalformedResponseError
from autointerp.llm.logprobs import line_end_numbers
from autointerp.llm.pricing import price_for

log = logging.getLogger("autointerp.llm")
# Every logprob entry carries its token's UTF-8 as a list of ints ("bytes"): most of the objects in a
# logprobs body, and unused here. Cut out before parsing, it no longer costs half the parse time.
# (Inside a JSON string a quote is escaped, so this pattern cannot match message text.)
_BYTES_FIELD = re.compile(rb',\s*"bytes":\s*(?:\[[^\]]*\]|null)')  # never the first key of its object
# Appended as a last system message when a server refuses `response_format` (HTTP 400).
PLAIN_JSON_INSTRUCTION = "Reply with JSON only, no other text, matching this JSON schema: {schema}"

# Reasoning models refuse logprobs and a temperature other than 1.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
# Output tokens allowed for a reasoning model's hidden reasoning, on top of the answer's own limit.
REASONING_TOKENS = 4096


def is_reasoning_model(model: str) -> bool:
    return model.startswith(_REASONING_PREFIXES)


def refuses_response_format(exc: openai.BadRequestError) -> bool:
    """Whether a 400 is about structured output (not, say, a too-long prompt)."""
    text = str(exc).lower()
    return "response_format" in text or "json_schema" in text


class AioHttpClient(openai.DefaultAioHttpClient):
    """The SDK's aiohttp transport: less client CPU per request than its default httpx2 one (see the
    CPU split of evals/bench_labeling.py), and at high concurrency on a small machine that CPU caps
    the request rate. Fixed here: it reports every failed connection (refused, reset, closed
    before an answer) as a connect timeout, so a dead server read "Request timed out"; those are
    re-raised as the connection errors they are, as Anthropic's copy of the same transport does."""

    async def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        try:
            return await super().send(request, **kwargs)
        except httpx2.ConnectTimeout as exc:
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, aiohttp.ServerTimeoutError):
                raise httpx2.ConnectError(str(exc), request=request) from cause
            raise


class OpenAIClient(BaseLLMClient):
    """`backend` is "openai" for api.openai.com and "openai-compatible" for other servers; the
    difference is only in parameter names older servers understand."""

    api_key_env = "OPENAI_API_KEY"

    def __init__(self, model: str, *, compatible: bool = False, **kwargs: Any):
        self.backend = "openai-compatible" if compatible else "openai"
        super().__init__(model, **kwargs)
        self.supports_logprobs = compatible or not is_reasoning_model(model)
        self._plain_json = False  # the server refused response_format: JSON is asked for in words

    def _make_sdk(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(**self._sdk_options(self.base_url), http_client=AioHttpClient())

    def wire_params(self, request: ChatRequest) -> dict[str, Any]:
        messages = [_wire_message(m) for m in request.messages]
        params: dict[str, Any] = {"model": request.model, "messages": messages}
        if request.tools is not None:
            params["tools"] = [{"type": "function", "function": t.model_dump()} for t in request.tools]
        reasoning = self.backend == "openai" and is_reasoning_model(request.model)
        if self.backend == "openai":
            params["max_completion_tokens"] = self.max_output_tokens(request)
        else:
            params["max_tokens"] = request.max_tokens  # what vLLM, llama.cpp and Ollama all accept
        if not reasoning:
            params["temperature"] = request.temperature
        if request.logprobs and self.supports_logprobs:
            params["logprobs"] = True
            params["top_logprobs"] = request.top_logprobs
        if request.json_schema is not None and self._plain_json:
            instruction = PLAIN_JSON_INSTRUCTION.format(schema=json.dumps(request.json_schema))
            params["messages"] = [*messages, {"role": "system", "content": instruction}]
        elif request.json_schema is not None:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": request.json_schema},
            }
        return params

    def max_output_tokens(self, request: ChatRequest) -> int:
        """Reasoning models spend their output limit on hidden reasoning first: without room for
        it, a 160-token answer comes back empty (cut off)."""
        if self.backend == "openai" and is_reasoning_model(request.model):
            return request.max_tokens + REASONING_TOKENS
        return request.max_tokens

    async def _send(
        self, sdk: openai.AsyncOpenAI, request: ChatRequest
    ) -> tuple[ChatResponse, float, Mapping[str, str]]:
        params = self.wire_params(request)
        try:
            answer = await self._post(sdk, params)
        except openai.BadRequestError as exc:
            if "response_format" not in params or not refuses_response_format(exc):
                raise
            # A server without structured output: ask for the JSON in words instead. Remembered only
            # once that works, so a 400 for another reason does not switch structured output off.
            self._plain_json = True
            try:
                answer = await self._post(sdk, self.wire_params(request))
            except openai.BadRequestError:
                self._plain_json = False
                raise
            log.warning("%s: the server refused response_format; asking for JSON in the prompt from now on", self.name)
        raw = answer.content
        if request.logprobs:
            raw = _BYTES_FIELD.sub(b"", raw)
        return (*self.parse_reply(orjson.loads(raw), request), answer.headers)

    @staticmethod
    async def _post(sdk: openai.AsyncOpenAI, params: dict[str, Any]) -> httpx2.Response:
        """The SDK's own request path (auth, timeout, errors) but the HTTP response back, for its raw
        body and its rate-limit headers: building SDK objects for every top logprob of every token
        cost ~100 ms of CPU per simulation reply, and re-checking our plain-JSON params against its
        typed dicts ~8 ms more."""
        return await sdk.post("/chat/completions", cast_to=httpx2.Response, body=params)

    def parse_reply(
        self, body: dict[str, Any], request: ChatRequest, *, batch: bool = False
    ) -> tuple[ChatResponse, float]:
        """A chat completion's JSON body (live or from a batch output file) as our response and its cost."""
        try:
            choice = body["choices"][0]
            message = choice["message"]
            usage = body.get("usage") or {}
            content = (choice.get("logprobs") or {}).get("content")
            calls = [_tool_call(c) for c in message.get("tool_calls") or []]
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise MalformedResponseError(f"{self.name}: response lacks {exc}") from exc
        text = message.get("content") or ""
        prompt_tokens = usage.get("prompt_tokens") or 0
        completion_tokens = usage.get("completion_tokens") or 0
        response = ChatResponse(
            text=text,
            line_end_numbers=line_end_numbers(content, text) if isinstance(content, list) else None,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=body.get("model") or request.model,
            finish_reason=choice.get("finish_reason"),
            tool_calls=calls,
        )
        if self.backend == "openai-compatible" and price_for(request.model, self.prices) is None:
            return response, 0.0  # a self-hosted model: free, and no warning about a missing price
        return response, self._cost(request.model, prompt_tokens, completion_tokens, batch=batch)


def _wire_message(message: ChatMessage) -> dict[str, Any]:
    """A message as chat completions take it: tool calls ride on the assistant turn, with their
    arguments as a JSON string; a tool result is a "tool" message naming its call."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["content"] = message.content or None
        wire["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in message.tool_calls
        ]
    return wire


def _tool_call(wire: dict[str, Any]) -> ToolCall:
    """A tool call of a reply. Arguments that are not a JSON object become {}: the tool then answers
    that an argument is missing, which the model can act on, rather than the unit failing."""
    function = wire["function"]
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except json.JSONDecodeError:
        arguments = {}
    return ToolCall(id=wire["id"], name=function["name"], arguments=arguments if isinstance(arguments, dict) else {})
