"""What a call costs: a price table in USD per million tokens, overridable by the user.

The built-in prices are list prices (standard tier) as published in 2025; providers change them,
so a user can pass their own table (dict, JSON or TOML file). Names match exactly: a guess from a
similar name ("o3-pro" priced as "o3") could be far off, so a dated snapshot needs its own entry. A
model missing from the table costs 0 and warns once; under a budget it is refused (see factory.py).
"""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from autointerp.errors import UserError

log = logging.getLogger("autointerp.llm")


class ModelPrice(BaseModel):
    input: float = Field(ge=0)  # USD per 1M input (prompt) tokens
    output: float = Field(ge=0)  # USD per 1M output (completion) tokens


def _p(input_usd: float, output_usd: float) -> ModelPrice:
    return ModelPrice(input=input_usd, output=output_usd)


# Keys are exact model names as sent to the provider.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    # OpenAI
    "gpt-4o": _p(2.50, 10.00),
    "gpt-4o-mini": _p(0.15, 0.60),
    "gpt-4.1": _p(2.00, 8.00),
    "gpt-4.1-mini": _p(0.40, 1.60),
    "gpt-4.1-nano": _p(0.10, 0.40),
    "gpt-4-turbo": _p(10.00, 30.00),
    "gpt-3.5-turbo": _p(0.50, 1.50),
    "gpt-5": _p(1.25, 10.00),
    "gpt-5-mini": _p(0.25, 2.00),
    "gpt-5-nano": _p(0.05, 0.40),
    "o1": _p(15.00, 60.00),
    "o1-mini": _p(1.10, 4.40),
    "o3": _p(2.00, 8.00),
    "o3-mini": _p(1.10, 4.40),
    "o4-mini": _p(1.10, 4.40),
    # Anthropic
    "claude-3-haiku": _p(0.25, 1.25),
    "claude-3-5-haiku": _p(0.80, 4.00),
    "claude-haiku-4-5": _p(1.00, 5.00),
    "claude-3-5-sonnet": _p(3.00, 15.00),
    "claude-3-7-sonnet": _p(3.00, 15.00),
    "claude-sonnet-4": _p(3.00, 15.00),
    "claude-3-opus": _p(15.00, 75.00),
    "claude-opus-4": _p(15.00, 75.00),
    "claude-opus-4-5": _p(5.00, 25.00),
}

# Anthropic prompt caching: reading a cached prefix costs 0.1x the input price, writing it 1.25x.
CACHE_READ_FACTOR = 0.1
CACHE_WRITE_FACTOR = 1.25
# Provider batch APIs charge half.
BATCH_FACTOR = 0.5

_warned_unpriced: set[str] = set()


class PriceTableError(UserError):
    """A user price table could not be read."""


def load_prices(source: str | Path | dict | None) -> dict[str, ModelPrice]:
    """The default table updated with the user's: a dict, or a .json/.toml file mapping
    model -> {input, output} (USD per 1M tokens)."""
    prices = dict(DEFAULT_PRICES)
    if source is None:
        return prices
    if isinstance(source, dict):
        raw = source
    else:
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as e:
            raise PriceTableError(f"cannot read price table {path}: {e}") from e
        try:
            raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as e:
            raise PriceTableError(f"price table {path} is not valid {path.suffix[1:] or 'JSON'}: {e}") from e
    for model, value in raw.items():
        try:
            prices[model] = value if isinstance(value, ModelPrice) else ModelPrice.model_validate(value)
        except ValidationError as e:
            raise PriceTableError(
                f"price for {model!r} must be {{input: USD per 1M tokens, output: USD per 1M tokens}}: {e}"
            ) from e
    return prices


def price_for(model: str, prices: dict[str, ModelPrice] | None = None) -> ModelPrice | None:
    """The price of exactly `model`, or None."""
    return (DEFAULT_PRICES if prices is None else prices).get(model)


def cost_usd(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    prices: dict[str, ModelPrice] | None = None,
    *,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    batch: bool = False,
) -> float:
    """USD for one call; 0 (with one warning per model) when the model has no price."""
    price = price_for(model, prices)
    if price is None:
        if model not in _warned_unpriced:
            _warned_unpriced.add(model)
            log.warning("no price known for model %r: its calls count as $0 (add it to the price table)", model)
        return 0.0
    input_cost = (
        prompt_tokens + cache_read_tokens * CACHE_READ_FACTOR + cache_write_tokens * CACHE_WRITE_FACTOR
    ) * price.input
    total = (input_cost + completion_tokens * price.output) / 1_000_000
    return total * BATCH_FACTOR if batch else total


# Tokens are counted before sending without the provider's tokenizer: BPE tokens average 3-4.5
# UTF-8 bytes in prose but nearer 2 in the token-per-line simulation prompts, so 2 bytes per token
# (plus a few tokens of framing per message) errs high, as a reservation should.
BYTES_PER_TOKEN = 2
TOKENS_PER_MESSAGE = 8


def prompt_token_bound(texts: list[str]) -> int:
    """A generous count of the prompt tokens of these message texts (and schema)."""
    return sum(len(t.encode()) // BYTES_PER_TOKEN + TOKENS_PER_MESSAGE for t in texts)


def worst_case_cost(
    model: str, prompt_tokens: int, max_output_tokens: int, prices: dict[str, ModelPrice] | None = None
) -> float:
    """USD a call can cost at most: every prompt token uncached plus every allowed output token."""
    price = price_for(model, prices)
    if price is None:
        return 0.0
    return (prompt_tokens * price.input + max_output_tokens * price.output) / 1_000_000
