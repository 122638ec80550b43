"""The report's sentence for a model or dictionary control compares its median with the real units'
and says "no different" when the real median lies inside the control's CI."""

from __future__ import annotations

from types import SimpleNamespace

from autointerp.compare import StatSummary
from autointerp.validity_report import _control_note


def _summary(median: float, low: float, high: float) -> StatSummary:
    return StatSummary(n=200, mean=median, mean_ci95=(low, high), median=median, median_ci95=(low, high))


REAL = SimpleNamespace(
    scorer="simulation",
    by_scorer={"simulation": SimpleNamespace(features=_summary(0.84, 0.83, 0.85), neurons=_summary(0.6, 0.58, 0.61))},
)


def test_a_control_whose_ci_holds_the_real_median_is_no_different() -> None:
    note = _control_note("random_model", "feature", REAL, _summary(0.836, 0.778, 0.882))  # type: ignore[arg-type]
    assert note.startswith("; no different from the trained model's features (0.840")


def test_a_control_below_the_real_units_says_so() -> None:
    note = _control_note("random_directions", "feature", REAL, _summary(0.513, 0.495, 0.528))  # type: ignore[arg-type]
    assert note == "; below the trained SAE's features (0.840)."
    above = _control_note("random_model", "feature", REAL, _summary(0.886, 0.867, 0.910))  # type: ignore[arg-type]
    assert above == "; above the trained model's features (0.840)."
