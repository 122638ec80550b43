"""A hard spending cap shared by every client of a run.

Each call reserves its worst-case cost (its prompt, counted before sending, plus its maximum output,
at the model's price) before it is sent, and settles to the true cost when the answer comes. A call
whose reservation does not fit under the cap is never sent, so the spend can pass the cap only by
what a call's true cost exceeds its reservation (an under-counted prompt), never by the calls in
flight. The stop message is formatted when read, so it reports the spend after in-flight calls ended.
"""

from __future__ import annotations

import asyncio
import threading

from autointerp.errors import UserError

# How often a call whose reservation does not fit looks again while others are in flight. The budget
# is shared by clients on several event loops (threads), so it polls rather than awaits an event.
RESERVE_POLL_S = 0.02


class BudgetExceeded(UserError):
    """The run has spent its budget; finished work is kept, the rest is left for a later run."""

    def __init__(self, budget: Budget):
        super().__init__("LLM budget spent")
        self.budget = budget

    def __str__(self) -> str:
        b = self.budget
        return (
            f"LLM budget of ${b.max_cost_usd or 0:.4f} is spent (${b.spent_usd:.4f} spent, the next call could "
            "cost more than is left); finished work is saved; raise the budget and re-run to continue"
        )


class Budget:
    def __init__(self, max_cost_usd: float | None, spent_usd: float = 0.0):
        """`spent_usd` lets a resumed run count what earlier runs already spent. A negative cap is
        refused by the settings models (LabelSpec, AgentSpec) before a budget is made."""
        self.max_cost_usd = max_cost_usd
        self.spent_usd = spent_usd
        self.reserved_usd = 0.0  # worst-case cost of the calls in flight
        self._lock = threading.Lock()

    @property
    def limited(self) -> bool:
        return self.max_cost_usd is not None

    def check(self) -> None:
        """Raise BudgetExceeded if nothing is left for any call, even once the calls in flight end."""
        with self._lock:
            if self.max_cost_usd is not None and self.spent_usd >= self.max_cost_usd:
                raise BudgetExceeded(self)

    def try_reserve(self, cost_usd: float) -> bool:
        """Hold `cost_usd` for a call about to be sent, if it fits beside the calls in flight."""
        with self._lock:
            if self.max_cost_usd is not None and self.spent_usd + self.reserved_usd + cost_usd > self.max_cost_usd:
                return False
            self.reserved_usd += cost_usd
            return True

    async def reserve(self, cost_usd: float) -> float:
        """Hold `cost_usd` (see try_reserve), waiting while calls in flight may still give some of
        theirs back; raise BudgetExceeded once it cannot fit. Returns the amount to `settle`."""
        while not self.try_reserve(cost_usd):
            with self._lock:
                waiting_on_others = self.reserved_usd > 0
            if not waiting_on_others:
                raise BudgetExceeded(self)
            await asyncio.sleep(RESERVE_POLL_S)
        return cost_usd

    def settle(self, reserved_usd: float, cost_usd: float) -> None:
        """The call is over: drop its reservation and count what it truly cost."""
        with self._lock:
            self.reserved_usd -= reserved_usd
            self.spent_usd += cost_usd

    def hold(self, cost_usd: float) -> None:
        """Hold `cost_usd` whether it fits or not: a provider batch submitted by an earlier run will be
        paid for anyway, and later calls must see that."""
        with self._lock:
            self.reserved_usd += cost_usd
