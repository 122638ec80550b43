"""What every exporter picks out of a catalog entry: the top examples and JSON-safe numbers."""

from __future__ import annotations

import math
from typing import Any

from autointerp.records import ActivationExample, UnitHarvest


def top_examples(harvest: UnitHarvest, limit: int) -> list[ActivationExample]:
    """The unit's `limit` strongest top-sampled examples (both splits), strongest first.

    Falls back to every example when the harvest kept no "top" sampling, so a unit is never
    exported without windows when it has some.
    """
    pool = [e for e in harvest.examples if e.sampling == "top"] or list(harvest.examples)
    return sorted(pool, key=lambda e: (-e.max_activation, e.window_id))[:limit]


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN or infinity: such values are exported as null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def json_safe(obj: Any) -> Any:
    """A copy of plain JSON data with every NaN or infinite float replaced by None."""
    if isinstance(obj, float):
        return finite_or_none(obj)
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    return obj
