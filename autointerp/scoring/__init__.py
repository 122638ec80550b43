"""Scorers: how well an explanation predicts its unit on held-out examples."""

from autointerp.scoring.common import balanced_accuracy
from autointerp.scoring.detection import DetectionScorerConfig, score_detection
from autointerp.scoring.fuzzing import FuzzingScorerConfig, score_fuzzing
from autointerp.scoring.simulation import (
    SimulationScorerConfig,
    correlation,
    score_simulation,
)

# Name -> scoring coroutine function, for stages that take scorer names from a config.
SCORERS = {
    "simulation": score_simulation,
    "detection": score_detection,
    "fuzzing": score_fuzzing,
}

__all__ = [
    "SCORERS",
    "DetectionScorerConfig",
    "FuzzingScorerConfig",
    "SimulationScorerConfig",
    "balanced_accuracy",
    "correlation",
    "score_detection",
    "score_fuzzing",
    "score_simulation",
]
