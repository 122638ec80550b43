"""Build an LLM client from a spec string such as "openai:gpt-4o-mini".

Keys come from the environment only (never from config files or the command line), so they cannot end
up in a stored run config.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autointerp.errors import UserError
from autointerp.llm.anthropic_backend import AnthropicClient
from autointerp.llm.budget import Budget
from autointerp.llm.client import BaseLLMClient
from autointerp.llm.errors import MissingAPIKeyError
from autointerp.llm.ledger import LLMLedger
from autointerp.llm.openai_backend import OpenAIClient
from autointerp.llm.pricing import ModelPrice, load_prices
from autointerp.llm.retry import RetryPolicy

BACKENDS = ("openai", "anthropic", "openai-compatible")
# Sent to self-hosted servers that ignore auth; the SDK insists on some key.
NO_KEY_PLACEHOLDER = "no-key-needed"


class LLMSpecError(UserError):
    """An LLM spec string or its options do not make sense."""


def parse_spec(spec: str) -> tuple[str, str]:
    """ "openai:gpt-4o-mini" -> ("openai", "gpt-4o-mini")."""
    backend, sep, model = spec.partition(":")
    if not sep or backend not in BACKENDS or not model.strip():
        raise LLMSpecError(
            f"bad LLM spec {spec!r}: expected BACKEND:MODEL with BACKEND one of {', '.join(BACKENDS)} "
            "(e.g. openai:gpt-4o-mini, anthropic:claude-haiku-4-5, openai-compatible:llama3 with a base URL)"
        )
    return backend, model.strip()


def _key_from_env(variable: str) -> str:
    key = os.environ.get(variable, "").strip()
    if not key:
        raise MissingAPIKeyError(
            f"{variable} is not set: export it to use this LLM, or use the offline explainer/simulator"
        )
    return key


def make_llm_client(
    spec: str,
    *,
    ledger: LLMLedger | None = None,
    base_url: str | None = None,
    concurrency: int = 8,
    timeout: float = 60.0,
    budget: Budget | None = None,
    max_attempts: int = 5,
    retry: RetryPolicy | None = None,
    prices: dict[str, ModelPrice] | dict | str | Path | None = None,
    run_id: str | None = None,
) -> BaseLLMClient:
    """A client for `spec` ("openai:MODEL", "anthropic:MODEL", "openai-compatible:MODEL").

    `ledger` enables the response cache and the call log; `budget` is shared by all clients of a run;
    `retry` overrides `max_attempts` and the waits; `prices` updates the built-in price table (a dict
    or a .json/.toml file). Raises MissingAPIKeyError naming the variable when a key is needed.
    """
    backend, model = parse_spec(spec)
    if concurrency < 1:
        raise LLMSpecError(f"concurrency must be >= 1, got {concurrency}")
    if timeout <= 0:
        raise LLMSpecError(f"timeout must be > 0 seconds, got {timeout}")
    common: dict[str, Any] = {
        "base_url": base_url,
        "ledger": ledger,
        "budget": budget,
        "concurrency": concurrency,
        "timeout_s": timeout,
        "retry": retry or RetryPolicy(max_attempts=max_attempts),
        "prices": load_prices(prices),
        "run_id": run_id,
    }
    if backend == "openai":
        return OpenAIClient(model, api_key=_key_from_env("OPENAI_API_KEY"), **common)
    if backend == "anthropic":
        return AnthropicClient(model, api_key=_key_from_env("ANTHROPIC_API_KEY"), **common)
    if not base_url:
        raise LLMSpecError(f"{spec}: an openai-compatible server needs a base URL (e.g. http://localhost:8000/v1)")
    api_key = os.environ.get("OPENAI_API_KEY", "").strip() or NO_KEY_PLACEHOLDER
    return OpenAIClient(model, compatible=True, api_key=api_key, **common)
