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
from autointerp.llm.errors import MissingAPIKeyError, UnpricedModelError
from autointerp.llm.ledger import LLMLedger
from autointerp.llm.openai_backend import OpenAIClient
from autointerp.llm.pricing import ModelPrice, load_prices, price_for
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
    api_key_env: str | None = None,
) -> BaseLLMClient:
    """A client for `spec` ("openai:MODEL", "anthropic:MODEL", "openai-compatible:MODEL").

    `ledger` enables the response cache and the call log; `budget` is shared by all clients of a run;
    `retry` overrides `max_attempts` and the waits; `prices` updates the built-in price table (a dict
    or a .json/.toml file); `api_key_env` names the variable holding the key when it is not the
    provider's usual one. Raises MissingAPIKeyError naming the variable when a key is needed, and
    UnpricedModelError for a model without a price under a budget (the cap could never fire).
    `concurrency`, `timeout` and `max_attempts` arrive checked by the settings models (LabelSpec,
    AgentSpec) that the commands read.
    """
    backend, model = parse_spec(spec)
    table = load_prices(prices)
    if budget is not None and budget.limited and price_for(model, table) is None:
        raise UnpricedModelError(
            f"{spec}: no price known for {model!r}, so a budget cannot be kept; give its price in USD per 1M "
            f'tokens with --prices FILE (JSON: {{"{model}": {{"input": 0.5, "output": 1.5}}}}), or drop --max-cost'
        )
    common: dict[str, Any] = {
        "base_url": base_url,
        "ledger": ledger,
        "budget": budget,
        "concurrency": concurrency,
        "timeout_s": timeout,
        "retry": retry or RetryPolicy(max_attempts=max_attempts),
        "prices": table,
        "run_id": run_id,
    }
    if backend == "openai":
        client: BaseLLMClient = OpenAIClient(model, api_key=_key_from_env(api_key_env or "OPENAI_API_KEY"), **common)
    elif backend == "anthropic":
        client = AnthropicClient(model, api_key=_key_from_env(api_key_env or "ANTHROPIC_API_KEY"), **common)
    elif not base_url:
        raise LLMSpecError(f"{spec}: an openai-compatible server needs a base URL (e.g. http://localhost:8000/v1)")
    else:
        api_key = os.environ.get(api_key_env or "OPENAI_API_KEY", "").strip() or NO_KEY_PLACEHOLDER
        client = OpenAIClient(model, compatible=True, api_key=api_key, **common)
    if api_key_env:
        client.api_key_env = api_key_env  # named in a refused-key error
    return client
