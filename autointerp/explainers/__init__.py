"""Explainers: write one description per unit from its explain-split examples."""

from __future__ import annotations

from typing import Protocol

from autointerp.explainers.llm import ExplainerError, LLMExplainer, LLMExplainerConfig, parse_explanation_reply
from autointerp.explainers.offline import OfflineExplainer, OfflineExplainerConfig
from autointerp.records import Explanation, UnitHarvest


class Explainer(Protocol):
    """What the explain stage needs: a name, the model and prompt version that tell its results apart
    (None where it has none), the settings hash its results carry, and `explain`."""

    name: str
    model: str | None
    prompt_version: str | None
    settings_hash: str

    async def explain(self, harvest: UnitHarvest) -> Explanation: ...


__all__ = [
    "Explainer",
    "ExplainerError",
    "LLMExplainer",
    "LLMExplainerConfig",
    "OfflineExplainer",
    "OfflineExplainerConfig",
    "parse_explanation_reply",
]
