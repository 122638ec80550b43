"""OpenAI chat completions through the official SDK; also any OpenAI-compatible server by base URL
(vLLM, llama.cpp, Ollama)."""

from __future__ import annotations

from typing import Any

import openai
from openai.types.chat import ChatCompletion

from autointerp.llm.base import ChatRequest, ChatResponse, TokenLogprob, TopLogprob
from autointerp.llm.client import BaseLLMClient
from autointerp.llm.errors import MalformedResponseError
from autointerp.llm.pricing import price_for

# Reasoning models refuse logprobs and a temperature other than 1.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def is_reasoning_model(model: str) -> bool:
    return model.startswith(_REASONING_PREFIXES)


class OpenAIClient(BaseLLMClient):
    """`backend` is "openai" for api.openai.com and "openai-compatible" for other servers; the
    difference is only in parameter names older servers understand."""

    api_key_env = "OPENAI_API_KEY"

    def __init__(self, model: str, *, compatible: bool = False, **kwargs: Any):
        self.backend = "openai-compatible" if compatible else "openai"
        super().__init__(model, **kwargs)
        self.supports_logprobs = compatible or not is_reasoning_model(model)

    def _make_sdk(self) -> openai.AsyncOpenAI:
        # max_retries=0: our own policy retries (see retry.py); the SDK default would multiply them.
        return openai.AsyncOpenAI(api_key=self._api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s)

    def wire_params(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        reasoning = self.backend == "openai" and is_reasoning_model(request.model)
        if self.backend == "openai":
            params["max_completion_tokens"] = request.max_tokens
        else:
            params["max_tokens"] = request.max_tokens  # what vLLM, llama.cpp and Ollama all accept
        if not reasoning:
            params["temperature"] = request.temperature
        if request.logprobs and self.supports_logprobs:
            params["logprobs"] = True
            params["top_logprobs"] = request.top_logprobs
        if request.json_schema is not None:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": request.json_schema},
            }
        return params

    async def _send(self, sdk: openai.AsyncOpenAI, request: ChatRequest) -> tuple[ChatResponse, float]:
        completion = await sdk.chat.completions.create(**self.wire_params(request))
        return self.parse_reply(completion, request)

    def parse_reply(
        self, completion: ChatCompletion, request: ChatRequest, *, batch: bool = False
    ) -> tuple[ChatResponse, float]:
        """A completion (live or from a batch output file) as our response and its cost."""
        if not completion.choices:
            raise MalformedResponseError(f"{self.name}: response has no choices")
        choice = completion.choices[0]
        if choice.message is None:
            raise MalformedResponseError(f"{self.name}: response choice has no message")
        logprobs = None
        if choice.logprobs is not None and choice.logprobs.content is not None:
            logprobs = [
                TokenLogprob(
                    token=t.token,
                    logprob=t.logprob,
                    top_logprobs=[TopLogprob(token=alt.token, logprob=alt.logprob) for alt in t.top_logprobs or []],
                )
                for t in choice.logprobs.content
            ]
        usage = completion.usage
        prompt_tokens = usage.prompt_tokens if usage and usage.prompt_tokens else 0
        completion_tokens = usage.completion_tokens if usage and usage.completion_tokens else 0
        response = ChatResponse(
            text=choice.message.content or "",
            logprobs=logprobs,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=completion.model or request.model,
            finish_reason=choice.finish_reason,
        )
        if self.backend == "openai-compatible" and price_for(request.model, self.prices) is None:
            return response, 0.0  # a self-hosted model: free, and no warning about a missing price
        return response, self._cost(request.model, prompt_tokens, completion_tokens, batch=batch)
