"""The offline simulator: predictions from what an explanation says, read by `autointerp.language`.

It is deterministic and free, so the whole pipeline scores without a key, and it is the matching used
by the offline detection and fuzzing scorers. It reads English (token classes, places, neighbours
within N tokens, the first N tokens, repeats, unquoted words, negation, strength words), and says
how much of an explanation it understood (`parse_coverage`), so a score from text it could not read
is never mistaken for a verdict on the explanation.
"""

from __future__ import annotations

from typing import Any

from autointerp.language import parse, predict, predict_many
from autointerp.simulators.base import HighlightedExample, Judgement, Simulation

SIMULATOR_NAME = "offline"
# Fuzzing: the marks look right when at least this share of marked tokens is predicted to fire.
FUZZ_AGREEMENT = 0.5


class OfflineSimulator:
    name = SIMULATOR_NAME
    local = True  # computes in-process: the score stage may spread it over worker processes

    def __init__(self) -> None:
        # Bump "version" when matching rules change, so old scores are not mistaken for new ones.
        self.settings: dict[str, Any] = {"simulator": self.name, "version": 4, "fuzz_agreement": FUZZ_AGREEMENT}

    def predict(self, explanation: str, tokens: list[str]) -> list[float]:
        """0-10 per token, synchronously."""
        return predict(explanation, tokens)

    def parse_coverage(self, explanation: str) -> float:
        """Share of the explanation's content words the language understood, 0-1."""
        return parse(explanation).coverage

    async def simulate(self, explanation: str, examples: list[list[str]]) -> Simulation:
        return Simulation(predictions=predict_many(explanation, examples))

    async def detect(self, explanation: str, examples: list[list[str]]) -> Judgement:
        """An excerpt matches when any token is predicted to fire."""
        return Judgement(answers=[max(p, default=0.0) > 0 for p in predict_many(explanation, examples)])

    async def fuzz(self, explanation: str, examples: list[HighlightedExample]) -> Judgement:
        """Marks are judged right when most marked tokens are predicted to fire."""
        answers = []
        predictions = predict_many(explanation, [example.tokens for example in examples])
        for example, predicted in zip(examples, predictions):
            firing = sum(1 for i in example.highlighted if predicted[i] > 0)
            answers.append(bool(example.highlighted) and firing >= FUZZ_AGREEMENT * len(example.highlighted))
        return Judgement(answers=answers)
