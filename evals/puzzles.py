"""Can the offline simulator tell a true explanation from decoys? A held-out puzzle set.

Each puzzle (tests/data/explanation_puzzles.json, written for this project) gives token excerpts
with activations, one true explanation in plain English and decoys: lookalike word lists ("instances
of the words x, y, z") and near misses (the opening bracket for the closing one, no negation, the
wrong case). The simulator predicts activations from each text; an explanation's score is the pooled
correlation with the real ones, as in simulation scoring. A puzzle is solved when the true explanation
scores strictly highest. Prints the share solved and every explanation's parse coverage.

    python -m evals.puzzles [path]
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from autointerp.scoring import correlation
from autointerp.simulators.offline import OfflineSimulator

PUZZLES = Path(__file__).resolve().parent.parent / "tests" / "data" / "explanation_puzzles.json"


@dataclass(frozen=True)
class Puzzle:
    name: str
    excerpts: list[tuple[list[str], list[float]]]  # tokens, activations
    true: str
    decoys: list[str]


@dataclass(frozen=True)
class Result:
    puzzle: Puzzle
    scores: dict[str, float]  # explanation -> correlation
    coverage: dict[str, float]  # explanation -> parse coverage

    @property
    def solved(self) -> bool:
        true = self.scores[self.puzzle.true]
        return all(true > self.scores[d] for d in self.puzzle.decoys)


def read_excerpt(text: str) -> tuple[list[str], list[float]]:
    """'x| =| 42@9' -> (["x", " =", " 42"], [0, 0, 9])."""
    tokens, activations = [], []
    for piece in text.split("|"):
        token, _, level = piece.rpartition("@") if "@" in piece else (piece, "", "0")
        tokens.append(token)
        activations.append(float(level))
    return tokens, activations


def load_puzzles(path: Path = PUZZLES) -> list[Puzzle]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        Puzzle(p["name"], [read_excerpt(e) for e in p["excerpts"]], p["true"], list(p["decoys"]))
        for p in data["puzzles"]
    ]


def solve(puzzle: Puzzle, simulator: OfflineSimulator) -> Result:
    actual = [a for _, acts in puzzle.excerpts for a in acts]
    scores, coverage = {}, {}
    for text in [puzzle.true, *puzzle.decoys]:
        predicted = [v for tokens, _ in puzzle.excerpts for v in simulator.predict(text, tokens)]
        scores[text] = correlation(predicted, actual) or 0.0
        coverage[text] = simulator.parse_coverage(text)
    return Result(puzzle, scores, coverage)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    puzzles = load_puzzles(Path(args[0]) if args else PUZZLES)
    simulator = OfflineSimulator()
    results = [solve(p, simulator) for p in puzzles]
    for result in results:
        mark = "ok  " if result.solved else "MISS"
        true = result.puzzle.true
        rivals = ", ".join(f"{result.scores[d]:.2f}" for d in result.puzzle.decoys)
        print(
            f"{mark} {result.puzzle.name:28s} true {result.scores[true]:.2f} (coverage {result.coverage[true]:.2f}); decoys {rivals}"
        )
    coverages = [c for r in results for c in r.coverage.values()]
    solved = sum(r.solved for r in results)
    print(f"\nranked first: {solved}/{len(results)} = {solved / len(results):.0%}")
    print(
        f"parse coverage over {len(coverages)} explanations: mean {sum(coverages) / len(coverages):.2f}, min {min(coverages):.2f}"
    )


if __name__ == "__main__":
    main()
