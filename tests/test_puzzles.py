"""The held-out puzzle set: the offline simulator must rank the true explanation of each puzzle above
its decoys (word lists and near misses) on at least 90% of them, as `python -m evals.puzzles` prints."""

from __future__ import annotations

from autointerp.simulators.offline import OfflineSimulator
from evals.puzzles import load_puzzles, read_excerpt, solve


def test_puzzle_set_is_well_formed() -> None:
    puzzles = load_puzzles()
    assert len(puzzles) >= 30
    assert len({p.name for p in puzzles}) == len(puzzles)
    for puzzle in puzzles:
        assert 2 <= len(puzzle.decoys) <= 4 and puzzle.true not in puzzle.decoys, puzzle.name
        assert any(a > 0 for _, acts in puzzle.excerpts for a in acts), puzzle.name
    assert read_excerpt("x| =| 42@9") == (["x", " =", " 42"], [0.0, 0.0, 9.0])


def test_true_explanations_rank_first_on_nine_in_ten() -> None:
    simulator = OfflineSimulator()
    results = [solve(p, simulator) for p in load_puzzles()]
    missed = [r.puzzle.name for r in results if not r.solved]
    assert len(missed) <= len(results) // 10, missed
    for result in results:  # every explanation parsed, its coverage recorded
        assert set(result.coverage) == {result.puzzle.true, *result.puzzle.decoys}
        assert all(0.0 < c <= 1.0 for c in result.coverage.values()), result.coverage
