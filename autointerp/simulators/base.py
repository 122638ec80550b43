"""What every simulator answers, and the one interface the scorers call.

A simulator reads an explanation and, from its text alone, predicts a unit's per-token activations
(simulation), whether the unit fires anywhere in an excerpt (detection), and whether highlighted
tokens are the ones it fires on (fuzzing). The offline simulator reads the explanation language; the LLM
simulator asks a model. Scorers turn these answers into numbers.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, Field

from autointerp.llm.base import ChatResponse


class Usage(BaseModel):
    """Tokens and money an answer cost (zero offline)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, response: ChatResponse) -> None:
        self.prompt_tokens += response.prompt_tokens
        self.completion_tokens += response.completion_tokens
        self.cost_usd += response.cost_usd

    def merge(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd


class Simulation(BaseModel):
    """Predicted activations, 0-10, one list per example and one number per token."""

    predictions: list[list[float]]
    usage: Usage = Field(default_factory=Usage)


class Judgement(BaseModel):
    """One yes/no answer per excerpt (detection: the unit fires here; fuzzing: marks are right)."""

    answers: list[bool]
    usage: Usage = Field(default_factory=Usage)


class HighlightedExample(BaseModel):
    """An excerpt with some token positions marked, for fuzzing."""

    tokens: list[str]
    highlighted: list[int]


class SimulatorError(Exception):
    """The simulator gave no usable answer (malformed output after its retries). Carries what was
    spent, so the failed score still records its cost."""

    def __init__(self, message: str, usage: Usage | None = None):
        super().__init__(message)
        self.usage = usage or Usage()


class Simulator(Protocol):
    """`name` goes into Score.simulator; `settings` (everything that changes answers: model, prompt
    versions, parameters) into the score's settings hash."""

    name: str
    settings: dict[str, Any]

    async def simulate(self, explanation: str, examples: list[list[str]]) -> Simulation: ...

    async def detect(self, explanation: str, examples: list[list[str]]) -> Judgement: ...

    async def fuzz(self, explanation: str, examples: list[HighlightedExample]) -> Judgement: ...
