"""Scorers: how well an explanation predicts its unit on held-out examples."""

from collections.abc import Awaitable, Callable
from typing import Literal

from autointerp.records import Score
from autointerp.scoring.common import ScorerConfig, balanced_accuracy
from autointerp.scoring.detection import DetectionScorerConfig, score_detection
from autointerp.scoring.fuzzing import FuzzingScorerConfig, score_fuzzing
from autointerp.scoring.simulation import (
    SimulationScorerConfig,
    correlation,
    score_simulation,
)

# The scorer names a config may give; pydantic checks them where a config is read.
ScorerName = Literal["simulation", "detection", "fuzzing"]

# Name -> scoring coroutine function (each takes its own config class), for stages that take
# scorer names from a config.
SCORERS: dict[ScorerName, Callable[..., Awaitable[Score]]] = {
    "simulation": score_simulation,
    "detection": score_detection,
    "fuzzing": score_fuzzing,
}

# Name -> the config class of its parameters (the defaults when a stage is given none).
SCORER_CONFIGS: dict[ScorerName, type[ScorerConfig]] = {
    "simulation": SimulationScorerConfig,
    "detection": DetectionScorerConfig,
    "fuzzing": FuzzingScorerConfig,
}

__all__ = [
    "SCORERS",
    "SCORER_CONFIGS",
    "DetectionScorerConfig",
    "FuzzingScorerConfig",
    "ScorerConfig",
    "ScorerName",
    "SimulationScorerConfig",
    "balanced_accuracy",
    "correlation",
    "score_detection",
    "score_fuzzing",
    "score_simulation",
]
