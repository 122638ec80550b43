"""A spending cap shared by every client of a run.

Checked before each call, so once the spend reaches the cap no new call starts and the stage can stop
cleanly with its finished work saved. Calls already in flight finish, so the final spend can pass the
cap by at most one call per concurrent slot.
"""

from __future__ import annotations

import threading

from autointerp.errors import UserError


class BudgetExceeded(UserError):
    """The run has spent its budget; finished work is kept, the rest is left for a later run."""


class Budget:
    def __init__(self, max_cost_usd: float | None, spent_usd: float = 0.0):
        """`spent_usd` lets a resumed run count what earlier runs already spent."""
        if max_cost_usd is not None and max_cost_usd < 0:
            raise UserError(f"budget must be >= 0 USD, got {max_cost_usd}")
        self.max_cost_usd = max_cost_usd
        self.spent_usd = spent_usd
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raise BudgetExceeded if no further call may start."""
        if self.max_cost_usd is not None and self.spent_usd >= self.max_cost_usd:
            raise BudgetExceeded(
                f"LLM budget of ${self.max_cost_usd:.4f} is spent (${self.spent_usd:.4f}); finished work "
                "is saved; raise the budget and re-run to continue"
            )

    def add(self, cost_usd: float) -> None:
        with self._lock:
            self.spent_usd += cost_usd
