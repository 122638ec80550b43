"""Adaptive concurrency: the controller's rule on its own, its gate in an event loop, and a labeling run
against a rate-limited local server in both wire formats, next to a client that keeps its concurrency
fixed."""

from __future__ import annotations

import asyncio
import math
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autointerp.explainers import LLMExplainer
from autointerp.labeling import explain_units
from autointerp.llm import RetryPolicy, make_llm_client
from autointerp.llm.rate_limit import AdaptiveConcurrency, Gate, RateSignal, rate_signal, reset_seconds
from autointerp.store import open_store
from autointerp.testing.fake_llm_server import FakeLLMServer, RateLimit
from autointerp.testing.planted import SimulatingResponder, planted_harvest, planted_units

SOURCE = "planted/rate-limited"
OK = RateSignal(200)
REFUSED = RateSignal(429)


def started(control: AdaptiveConcurrency, count: int, now: float = 0.0) -> list[int]:
    return [control.start(now) for _ in range(count)]


# ---- the rule --------------------------------------------------------------------------------


def test_a_round_of_429s_halves_the_limit_once() -> None:
    control = AdaptiveConcurrency(16)
    rounds = started(control, 16)
    for r in rounds[:12]:  # twelve refusals of requests sent together: one cut
        control.finish(r, REFUSED, 0.0)
    assert (control.slots, control.cuts, control.rate_limited) == (8, 1, 12)
    later = started(control, 1)
    control.finish(later[0], REFUSED, 0.0)  # sent after the cut and still refused: cut again
    assert (control.slots, control.lowest) == (4, 4)
    for _ in range(10):
        control.finish(control.start(0.0), REFUSED, 0.0)
    assert control.slots == 1  # never below one


def test_answers_grow_the_limit_one_slot_per_round_up_to_the_ceiling() -> None:
    control = AdaptiveConcurrency(6)
    control.finish(control.start(0.0), REFUSED, 0.0)
    assert control.slots == 3
    for r in started(control, 3):
        control.finish(r, OK, 0.0)
    assert control.slots == 4  # three answers at limit 3: one slot more
    for _ in range(100):
        control.finish(control.start(0.0), OK, 0.0)
    assert control.slots == 6


def test_retry_after_pauses_every_start_and_a_full_limit_waits_for_a_slot() -> None:
    control = AdaptiveConcurrency(2)
    first, second = started(control, 2, now=10.0)
    assert control.wait_s(10.0) == math.inf  # both slots taken
    control.finish(first, RateSignal(429, retry_after_s=2.0), 10.0)
    assert control.wait_s(10.5) == pytest.approx(1.5)  # a slot is free, but the pause holds
    control.finish(second, RateSignal(429, retry_after_s=1.0), 10.5)  # inside the pause: no extension
    assert control.wait_s(12.0) == 0.0
    assert (control.pauses, control.paused_s) == (1, 2.0)


def test_remaining_requests_slow_starts_before_the_window_runs_out() -> None:
    control = AdaptiveConcurrency(8)
    first, _ = started(control, 2)
    control.finish(first, RateSignal(200, remaining=3, reset_s=1.0), 0.0)  # 3 left, 1 still in flight
    assert control.wait_s(0.1) == 0.0
    control.start(0.1)
    control.start(0.1)
    assert control.wait_s(0.2) == pytest.approx(0.8)  # spent: wait for the reset, not for a 429
    assert control.wait_s(1.0) == 0.0
    assert control.window_waits == 1


def test_rate_signal_reads_both_providers_headers() -> None:
    openai = rate_signal(
        200, {"x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "6m0s", "retry-after-ms": "250"}
    )
    assert (openai.remaining, openai.reset_s, openai.retry_after_s) == (59, 360.0, 0.25)
    reset_at = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    anthropic = rate_signal(
        429, {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": reset_at}
    )
    assert anthropic.remaining == 0 and 29.0 < (anthropic.reset_s or 0.0) <= 30.0
    assert rate_signal(200, {"x-ratelimit-remaining-requests": "5"}) == RateSignal(200)  # no reset: nothing known
    assert rate_signal(None, None) == RateSignal(None)


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1.0), ("20ms", 0.02), ("1m30.5s", 90.5), ("2h", 7200.0), ("0.25", 0.25)]
)
def test_reset_durations(text: str, seconds: float) -> None:
    assert reset_seconds(text) == pytest.approx(seconds)


def test_an_unreadable_reset_is_unknown() -> None:
    assert reset_seconds("soon") is None
    assert reset_seconds("2026-11-30T12:00:10Z", now=datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)) == 10.0


def test_summary_says_what_the_limits_made_it_do() -> None:
    control = AdaptiveConcurrency(4)
    assert control.summary() is None
    control.finish(control.start(0.0), RateSignal(429, retry_after_s=0.5), 0.0)
    assert control.summary() == (
        "rate limits: 1 refusals (429/529), concurrency cut 1 times (lowest 2 of 4), "
        "1 Retry-After pauses (0.50 s), 0 waits for a window's reset"
    )


# ---- the gate ----------------------------------------------------------------------------------


def test_gate_keeps_to_the_limit_and_holds_everyone_through_a_pause() -> None:
    control = AdaptiveConcurrency(4)
    busy: list[int] = []
    peak = 0

    async def call(gate: Gate, signal: RateSignal) -> float:
        nonlocal peak
        async with gate.slot() as slot:
            started = time.monotonic()
            busy.append(1)
            peak = max(peak, len(busy))
            await asyncio.sleep(0.005)
            busy.pop()
            slot.leave(signal)
        return started

    async def main() -> tuple[float, list[float]]:
        gate = Gate(control)
        await call(gate, RateSignal(429, retry_after_s=0.1))  # the limit halves to 2, everyone pauses
        refused_at = time.monotonic()
        # Answers that say nothing (a timeout): the limit neither grows nor falls.
        return refused_at, await asyncio.gather(*(call(gate, RateSignal(None)) for _ in range(8)))

    refused_at, starts = asyncio.run(main())
    assert peak == 2
    assert min(starts) - refused_at >= 0.09
    assert control.in_flight == 0 and control.slots == 2


# ---- a run against a rate-limited server -------------------------------------------------------


class FixedConcurrency(AdaptiveConcurrency):
    """The client as it was: its concurrency never moves, whatever the server says."""

    def finish(self, round_: int, signal: RateSignal, now: float) -> None:
        self.in_flight -= 1


def label_under_a_limit(tmp_path: Path, api: str, units: int, *, fixed: bool = False) -> tuple[int, list[dict]]:
    """Explain `units` planted units at concurrency 16 against a server allowing 8 requests per 0.1 s
    window; returns the server's 429 count and the call log, after checking every unit is labelled."""
    limit = RateLimit(requests=8, window_s=0.1)
    retry = RetryPolicy(max_attempts=10, initial_wait_s=0.01, max_wait_s=0.05, jitter_s=0.01)
    name = f"{api}-{'fixed' if fixed else 'adaptive'}"
    with (
        FakeLLMServer(SimulatingResponder(), latency_s=0.02, rate_limit=limit) as server,
        open_store(tmp_path / f"{name}.db") as store,
    ):
        store.put_source(SOURCE, {})
        store.put_units(SOURCE, [planted_harvest(u) for u in planted_units(units)])
        base_url = server.openai_base_url if api == "openai" else server.anthropic_base_url
        spec = "openai:gpt-4o-mini" if api == "openai" else "anthropic:claude-haiku-4-5"
        client = make_llm_client(spec, base_url=base_url, ledger=store.ledger, concurrency=16, retry=retry)
        if fixed:
            client.rate_control = FixedConcurrency(16)
        report = asyncio.run(explain_units(store, SOURCE, None, LLMExplainer(client), concurrency=16, progress=False))
        assert (report.written, report.failed) == (units, 0)
        return limit.refused, store.ledger.llm_calls()


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_a_run_at_concurrency_16_keeps_to_a_server_allowing_8_per_window(tmp_path: Path, api: str) -> None:
    refused, calls = label_under_a_limit(tmp_path, api, 24)
    # The first 16 go out before any answer says there is a limit: 8 refused. After that, the
    # headers and the halved limit keep it within the window (a fixed client: ~8 more per window).
    assert 8 <= refused <= 12
    logged = [c for c in calls if c["http_status"] == 429]
    assert len(logged) == refused  # every refusal is in the call log, with what the client did about it
    assert all(
        c["status"] == "error" and re.search(r"\[concurrency \d of 16, all calls paused", c["error"]) for c in logged
    )


@pytest.mark.slow
def test_far_fewer_refusals_than_a_client_of_fixed_concurrency(tmp_path: Path) -> None:
    adaptive, _ = label_under_a_limit(tmp_path, "openai", 64)
    fixed, _ = label_under_a_limit(tmp_path, "openai", 64, fixed=True)
    # 9 vs 40 on a quiet machine; under load the fixed client sends more slowly and is refused less
    assert adaptive * 2 <= fixed
