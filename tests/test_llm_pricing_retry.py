"""Price table, budget arithmetic, Retry-After parsing and key redaction: the pure parts of the LLM layer."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from autointerp.llm.budget import Budget, BudgetExceeded
from autointerp.llm.pricing import PriceTableError, cost_usd, load_prices, price_for
from autointerp.llm.redact import redact, safe_url
from autointerp.llm.retry import RetryPolicy, retry_after_seconds, wait_seconds
from autointerp.pipeline import LabelSpec


def test_prices_match_exact_names_only() -> None:
    assert price_for("gpt-4o-mini") is not None and price_for("o3") is not None
    for guess in ("o3-pro", "gpt-4o-mini-2024-07-18", "gpt-4", "claude-3-5-haiku-20241022"):
        assert price_for(guess) is None, guess  # no price borrowed from a similar name
    assert price_for("o3-pro", load_prices({"o3-pro": {"input": 20, "output": 80}})).input == 20


def test_cost_counts_input_output_and_prompt_cache() -> None:
    prices = load_prices({"m": {"input": 2.0, "output": 10.0}})
    assert cost_usd("m", 1_000_000, 100_000, prices) == pytest.approx(2.0 + 1.0)
    assert cost_usd("m", 0, 0, prices, cache_read_tokens=1_000_000) == pytest.approx(0.2)
    assert cost_usd("m", 0, 0, prices, cache_write_tokens=1_000_000) == pytest.approx(2.5)
    assert cost_usd("m", 1_000_000, 0, prices, batch=True) == pytest.approx(1.0)


def test_unknown_model_costs_zero_and_warns_once(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="autointerp.llm"):
        assert cost_usd("my-local-model-x1", 1000, 1000) == 0.0
        assert cost_usd("my-local-model-x1", 1000, 1000) == 0.0
    assert sum("my-local-model-x1" in r.getMessage() for r in caplog.records) == 1


def test_price_files_json_and_toml(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"gpt-4o": {"input": 1.0, "output": 2.0}}')
    (tmp_path / "p.toml").write_text("[my-model]\ninput = 0.5\noutput = 1.5\n")
    assert load_prices(tmp_path / "p.json")["gpt-4o"].input == 1.0
    from_toml = load_prices(str(tmp_path / "p.toml"))
    assert from_toml["my-model"].output == 1.5 and "gpt-4o-mini" in from_toml  # defaults kept

    (tmp_path / "bad.json").write_text("{oops")
    (tmp_path / "neg.json").write_text('{"m": {"input": -1, "output": 0}}')
    for bad in ["bad.json", "neg.json", "absent.json"]:
        with pytest.raises(PriceTableError):
            load_prices(tmp_path / bad)


def test_budget_arithmetic() -> None:
    unlimited = Budget(None)
    unlimited.settle(0.0, 1e9)
    unlimited.check()
    assert unlimited.spent_usd == 1e9

    resumed = Budget(1.0, spent_usd=0.4)
    resumed.hold(0.5)  # a batch an earlier run submitted: held even where it does not fit beside others
    assert not resumed.try_reserve(0.2)
    resumed.settle(0.5, 0.6)
    assert resumed.spent_usd == pytest.approx(1.0) and resumed.reserved_usd == 0
    with pytest.raises(BudgetExceeded):
        resumed.check()
    with pytest.raises(ValidationError):  # a negative cap never reaches a Budget: the settings refuse it
        LabelSpec(max_cost=-1)


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "100", "retry-after": "9"}) == 0.1
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= retry_after_seconds({"retry-after": later}) <= 30
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(initial_wait_s=1.0, max_wait_s=5.0, jitter_s=0.0)
    assert [wait_seconds(policy, n, None) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    jittered = RetryPolicy(initial_wait_s=1.0, jitter_s=0.5)
    assert all(1.0 <= wait_seconds(jittered, 1, None) <= 1.5 for _ in range(20))


def test_redaction() -> None:
    text = "Incorrect API key provided: sk-proj-abc***xyz1 (key sk-ant-api03-SECRETSECRET)"
    cleaned = redact(text, ("exact-secret",))
    assert "abc" not in cleaned and "SECRET" not in cleaned and cleaned.count("[REDACTED]") == 2
    assert redact("token exact-secret here", ("exact-secret",)) == "token [REDACTED] here"
    assert safe_url("https://user:pw@host.example:8443/v1?api-key=zz") == "https://host.example:8443/v1"


def test_a_reservation_waits_for_calls_in_flight_then_fits_or_stops() -> None:
    budget = Budget(1.0)

    async def scenario() -> None:
        first = await budget.reserve(0.7)
        second = asyncio.create_task(budget.reserve(0.7))  # does not fit beside the first
        await asyncio.sleep(0.1)
        assert not second.done()
        budget.settle(first, 0.2)  # the first call cost less than its worst case
        assert await second == 0.7  # 0.2 spent + 0.7 held fits under 1.0
        budget.settle(0.7, 0.7)
        with pytest.raises(BudgetExceeded, match=r"\$0\.9000 spent"):
            await budget.reserve(0.2)  # nothing in flight to wait for: stop
        assert budget.reserved_usd == pytest.approx(0.0)

    asyncio.run(scenario())
