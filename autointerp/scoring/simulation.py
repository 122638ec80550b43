"""Simulation scoring: Pearson correlation between simulated and real activations.

The value ("all") pools every token of the protocol's score-split windows (see `examples`); the
parts hold the correlation within each stratum (top, quantile, random, hard_negative) and over the
literature's 5 top + 5 random windows ("bills", Bills et al. 2023). Constant vectors get an
explicit rule instead of a NaN: when the real activations do not vary there is nothing to predict
and the correlation is None (a stratum of silent windows has none); when only the prediction is
constant it predicts nothing and scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import ClassVar

import numpy as np

from autointerp.llm.errors import LLMCallError
from autointerp.records import ExampleScore, Explanation, Score, UnitHarvest
from autointerp.scoring.common import ScorerConfig, failed_score, finished_score, score_settings_hash
from autointerp.scoring.examples import (
    PROTOCOL_VERSION,
    STRATA,
    ProtocolVersion,
    simulation_examples,
)
from autointerp.simulators.base import Simulator, SimulatorError

SCORER_NAME = "simulation"


class SimulationScorerConfig(ScorerConfig):
    scorer: ClassVar[str] = SCORER_NAME

    protocol: ProtocolVersion = PROTOCOL_VERSION
    bills_per_sampling: int = 5  # top and random windows in the "bills" part


def correlation(predicted: Sequence[float], actual: Sequence[float]) -> float | None:
    """Pearson r; None when `actual` is constant (undefined), 0.0 when only `predicted` is."""
    p = np.asarray(predicted, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if p.shape != a.shape:
        raise ValueError(f"predicted has {p.size} values, actual {a.size}")
    if a.size < 2 or np.ptp(a) == 0:
        return None
    if np.ptp(p) == 0:
        return 0.0
    return float(np.corrcoef(p, a)[0, 1])


async def score_simulation(
    harvest: UnitHarvest,
    explanation: Explanation,
    simulator: Simulator,
    config: SimulationScorerConfig | None = None,
) -> Score:
    config = config or SimulationScorerConfig()
    settings = score_settings_hash(config, simulator)
    examples = simulation_examples(harvest, config.protocol)
    if not examples:
        return failed_score(harvest, explanation, SCORER_NAME, simulator, settings, "no examples in the score split")
    try:
        simulation = await simulator.simulate(explanation.text, [e.tokens for e in examples])
    except (SimulatorError, LLMCallError) as exc:
        return failed_score(
            harvest, explanation, SCORER_NAME, simulator, settings, str(exc), getattr(exc, "usage", None)
        )
    details = [
        ExampleScore(window_id=e.window_id, sampling=e.sampling, predicted=p, actual=e.activations)
        for e, p in zip(examples, simulation.predictions)
    ]
    parts = simulation_parts(details, config.bills_per_sampling)
    usage = simulation.usage
    if parts["all"] is None:
        return failed_score(
            harvest, explanation, SCORER_NAME, simulator, settings,
            "real activations are constant on the score split: correlation undefined", usage, details,
        )  # fmt: skip
    return finished_score(harvest, explanation, SCORER_NAME, simulator, settings, parts["all"], parts, details, usage)


def pooled_correlation(details: Sequence[ExampleScore]) -> float | None:
    """One correlation over every token of the given examples; None without examples."""
    if not details:
        return None
    predicted = list(chain.from_iterable(d.predicted for d in details))  # type: ignore[arg-type, misc]
    actual = list(chain.from_iterable(d.actual for d in details))  # type: ignore[arg-type, misc]
    return correlation(predicted, actual)


def simulation_parts(details: Sequence[ExampleScore], bills_per_sampling: int = 5) -> dict[str, float | None]:
    """Pooled ("all"), per stratum, and the Bills et al. 5 top + 5 random variant."""
    parts: dict[str, float | None] = {"all": pooled_correlation(details)}
    for stratum in STRATA:
        parts[stratum] = pooled_correlation([d for d in details if d.sampling == stratum])
    bills = [d for d in details if d.sampling == "top"][:bills_per_sampling]
    bills += [d for d in details if d.sampling == "random"][:bills_per_sampling]
    parts["bills"] = pooled_correlation(bills)
    return parts
