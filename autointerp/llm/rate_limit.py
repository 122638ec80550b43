"""Adaptive concurrency: how many requests a client keeps in flight, steered by the server's rate limits.

A fixed --concurrency above what a provider allows turns most of a run into 429s and retries; one
below it wastes the allowance. `AdaptiveConcurrency` keeps the numbers (no I/O, time passed in, so it
is tested on its own); `Gate` makes an event loop's calls wait on it.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from autointerp.llm.retry import retry_after_seconds

# Answers that mean "slower": rate limited (429) and Anthropic's overloaded (529).
SLOW_DOWN = frozenset({429, 529})
# (remaining, reset) header pairs: OpenAI's, then Anthropic's.
_REQUEST_HEADERS = (
    ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def reset_seconds(value: str, now: datetime | None = None) -> float | None:
    """Seconds until a rate-limit window resets: OpenAI writes a duration ("1s", "6m0s", "20ms"),
    Anthropic an RFC 3339 time; a bare number is seconds. None when unreadable."""
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RateSignal:
    """What one answer says about the rate limit: its HTTP status (None: no answer, e.g. a timeout),
    the Retry-After wait, and the requests remaining in the window with the seconds until it resets."""

    status: int | None
    retry_after_s: float | None = None
    remaining: int | None = None
    reset_s: float | None = None


def rate_signal(status: int | None, headers: Mapping[str, str] | None) -> RateSignal:
    """Read an answer's status and headers (either provider's names)."""
    if not headers:
        return RateSignal(status)
    remaining = reset = None
    for remaining_name, reset_name in _REQUEST_HEADERS:
        left, when = headers.get(remaining_name), headers.get(reset_name)
        if left is not None and when is not None and left.strip().isdigit():
            remaining, reset = int(left), reset_seconds(when)
            break
    return RateSignal(status, retry_after_seconds(headers), remaining if reset is not None else None, reset)


class AdaptiveConcurrency:
    """The limit on requests in flight, set from the answers (AIMD, the rule TCP steers its window by):

    - a 429 or 529 halves the limit (never below 1), once per round: a refusal of a request sent
      before the last cut says nothing the cut did not already answer;
    - a Retry-After on any answer pauses every start until then, not just the refused call's retry;
    - the window's remaining requests, less those in flight, are the starts allowed until it resets:
      once they are spent every start waits for the reset, so the client slows before a 429;
    - each `limit` answered requests (a round of answers) add one slot, up to `ceiling`, unless
      the window has no room for one more request than are in flight.

    Times are monotonic seconds, passed in. It also keeps what it did, for the run's log.
    """

    def __init__(self, ceiling: int):
        self.ceiling = ceiling
        self.slots = ceiling  # the limit now
        self.answered = 0  # answers since the limit last grew
        self.in_flight = 0
        self.round = 0  # bumped by each cut
        self.resume_at = 0.0  # no start before this (Retry-After)
        self.credits: int | None = None  # starts left in the window (None: not known)
        self.credits_until = 0.0  # when the window resets
        self.rate_limited = 0  # 429/529 answers
        self.cuts = 0
        self.lowest = ceiling
        self.pauses = 0
        self.paused_s = 0.0
        self.window_waits = 0  # times the window's remaining requests ran out before its reset

    def wait_s(self, now: float) -> float:
        """0 when a request may start now; else how long to wait (inf: until one in flight ends)."""
        if now < self.resume_at:
            return self.resume_at - now
        if self.credits is not None and self.credits <= 0 and now < self.credits_until:
            return self.credits_until - now
        return 0.0 if self.in_flight < self.slots else math.inf

    def start(self, now: float) -> int:
        """Count a request going out; returns its round, to hand back to `finish`."""
        self.in_flight += 1
        if self.credits is not None and now < self.credits_until:
            self.credits -= 1
            self.window_waits += self.credits == 0
        return self.round

    def finish(self, round_: int, signal: RateSignal, now: float) -> None:
        """A request sent in `round_` got this answer (or none)."""
        self.in_flight -= 1
        if signal.status in SLOW_DOWN:
            self.rate_limited += 1
            if round_ == self.round:
                self.slots = max(1, self.slots // 2)
                self.answered = 0
                self.round += 1
                self.cuts += 1
                self.lowest = min(self.lowest, self.slots)
        elif signal.status is not None and signal.status < 400 and self.slots < self.ceiling:
            if signal.remaining is not None and signal.remaining <= self.in_flight:
                return self._learn_window(signal, now)  # the window, not this limit, holds the rate
            self.answered += 1
            if self.answered >= self.slots:
                self.slots += 1
                self.answered = 0
        if signal.retry_after_s:
            self._pause(now, now + signal.retry_after_s)
        self._learn_window(signal, now)

    def _learn_window(self, signal: RateSignal, now: float) -> None:
        """Answers arrive out of order: while a known window lasts its remaining count only falls,
        so a higher count in a late answer is stale; the first answer after its reset opens the next."""
        if signal.remaining is None or signal.reset_s is None:
            return
        credits = signal.remaining - self.in_flight
        if self.credits is not None and now < self.credits_until:
            self.credits = min(self.credits, credits)
        else:
            self.credits, self.credits_until = credits, now + signal.reset_s

    def _pause(self, now: float, until: float) -> None:
        if until <= self.resume_at:
            return
        self.pauses += self.resume_at <= now  # a new pause, not the extension of one under way
        self.paused_s += until - max(self.resume_at, now)
        self.resume_at = until

    def state(self, now: float) -> str:
        """The limit and pause now, as a note on a refused call's log row."""
        note = f"concurrency {self.slots} of {self.ceiling}"
        return note + (f", all calls paused {self.resume_at - now:.2f} s" if self.resume_at > now else "")

    def summary(self) -> str | None:
        """What the rate limits made it do (None if they never acted)."""
        if not (self.rate_limited or self.pauses or self.window_waits):
            return None
        return (
            f"rate limits: {self.rate_limited} refusals (429/529), concurrency cut {self.cuts} times "
            f"(lowest {self.lowest} of {self.ceiling}), {self.pauses} Retry-After pauses ({self.paused_s:.2f} s), "
            f"{self.window_waits} waits for a window's reset"
        )


class Gate:
    """One event loop's calls waiting for `AdaptiveConcurrency` to let them start, first come first
    served (the controller may be shared by the loops a run makes one after another)."""

    def __init__(self, control: AdaptiveConcurrency):
        self.control = control
        self._waiters: dict[asyncio.Future[None], None] = {}  # an ordered set

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """Hold a slot for one request; it is given back on the way out if `Slot.leave` was not called."""
        slot = Slot(self, *await self.enter())
        try:
            yield slot
        finally:
            slot.leave(RateSignal(None))

    async def enter(self) -> tuple[int, bool]:
        """Wait for a slot (and out any pause); returns the round to pass to `leave`, and whether
        it had to wait."""
        control = self.control
        waited = False
        while (wait := control.wait_s(time.monotonic())) > 0:
            waited = True
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[waiter] = None
            try:
                if math.isinf(wait):
                    await waiter
                else:
                    await asyncio.wait_for(waiter, wait)
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                self._wake()  # a wake-up this waiter took goes to the next one
                raise
            finally:
                del self._waiters[waiter]
        return control.start(time.monotonic()), waited

    def leave(self, round_: int, signal: RateSignal) -> None:
        self.control.finish(round_, signal, time.monotonic())
        self._wake()

    def _wake(self) -> None:
        free = self.control.slots - self.control.in_flight
        for waiter in self._waiters:
            if free <= 0:
                return
            if not waiter.done():  # a done one was woken already and has yet to run: its slot is taken
                waiter.set_result(None)
            free -= 1


class Slot:
    """One request's place in a `Gate`: left once, as soon as its answer is in (before the answer is
    logged or stored), so the limits already reflect it and the next request can go."""

    def __init__(self, gate: Gate, round_: int, waited: bool):
        self.gate = gate
        self.round = round_
        self.waited = waited  # it waited for its slot: others may have answered the same request meanwhile
        self.held = True

    def leave(self, signal: RateSignal) -> None:
        if self.held:
            self.held = False
            self.gate.leave(self.round, signal)
