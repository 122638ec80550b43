"""Simulators: predict a unit's activations (and judge excerpts) from an explanation's text alone."""

from autointerp.simulators.base import HighlightedExample, Judgement, Simulation, Simulator, SimulatorError, Usage
from autointerp.simulators.llm import LLMSimulator, LLMSimulatorConfig
from autointerp.simulators.offline import OfflineSimulator

__all__ = [
    "HighlightedExample",
    "Judgement",
    "LLMSimulator",
    "LLMSimulatorConfig",
    "OfflineSimulator",
    "Simulation",
    "Simulator",
    "SimulatorError",
    "Usage",
]
