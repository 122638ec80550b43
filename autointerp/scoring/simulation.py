"""Simulation scoring: Pearson correlation between simulated and real activations.

Pooled over every token of the score split's top and random examples ("all", the headline value,
as in Bills et al. 2023), and separately over the top and the random ones. Constant vectors get an
explicit rule instead of a NaN: when the real activations do not vary there is nothing to predict
and the correlation is None; when only the prediction is constant it predicts nothing and scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from autointerp.llm.errors import LLMCallError
from autointerp.records import ExampleScore, Explanation, Score, UnitHarvest
from autointerp.scoring.common import failed_score, finished_score, score_settings_hash
from autointerp.simulators.base import Simulator, SimulatorError

SCORER_NAME = "simulation"


class SimulationScorerConfig(BaseModel):
    # Stand in with silent windows when a harvest has no random ones in the score split.
    silent_when_no_random: bool = True


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
    settings = score_settings_hash(SCORER_NAME, config.model_dump(), simulator)
    top = harvest.examples_for("score", "top")
    random_part = harvest.examples_for("score", "random")
    if not random_part and config.silent_when_no_random:
        random_part = harvest.examples_for("score", "silent")
    examples = top + random_part
    if not examples:
        return failed_score(harvest, explanation, SCORER_NAME, simulator, settings, "no top or random examples in the score split")
    try:
        simulation = await simulator.simulate(explanation.text, [e.tokens for e in examples])
    except (SimulatorError, LLMCallError) as exc:
        return failed_score(harvest, explanation, SCORER_NAME, simulator, settings, str(exc), getattr(exc, "usage", None))
    details = [
        ExampleScore(window_id=e.window_id, sampling=e.sampling, predicted=p, actual=e.activations)
        for e, p in zip(examples, simulation.predictions)
    ]

    def pooled(part: list[ExampleScore]) -> float | None:
        if not part:
            return None
        predicted = [v for d in part for v in d.predicted]  # type: ignore[union-attr]
        actual = [v for d in part for v in d.actual]  # type: ignore[union-attr]
        return correlation(predicted, actual)

    parts = {"all": pooled(details), "top": pooled(details[: len(top)]), "random": pooled(details[len(top) :])}
    usage = simulation.usage
    if parts["all"] is None:
        return failed_score(
            harvest, explanation, SCORER_NAME, simulator, settings,
            "real activations are constant on the score split: correlation undefined", usage, details,
        )  # fmt: skip
    return finished_score(harvest, explanation, SCORER_NAME, simulator, settings, parts["all"], parts, details, usage)
