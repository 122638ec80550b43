"""The hard-negative pass's copy of the first pass's activations: exact, and only for sparse kinds."""

from __future__ import annotations

import torch

from sae.harvest_replay import HardPassCache
from sae.unit_acts import DenseActs, SparseActs


def test_sparse_kinds_are_kept_bit_for_bit_and_dense_ones_dropped() -> None:
    sparse = torch.zeros(4, 8, 16)
    sparse[0, 1, 2], sparse[1, 0, 0], sparse[3, 7, 15] = 1.5, -0.0, float("nan")
    dense = torch.randn(4, 8, 16)
    coded = torch.zeros(4, 8, 64)
    coded[1, 3, 60], coded[2, 0, 5] = 2.0, 0.25
    tokens = torch.arange(32).reshape(4, 8)
    cache = HardPassCache(n_windows=6)
    for first, split in ((0, False), (4, True), (8, True)):
        acts = {"neuron": DenseActs(dense), "feature": DenseActs(sparse), "planted": SparseActs.from_dense(coded)}
        ids, is_score = torch.arange(first, first + 4), torch.full((4,), split)
        cache.add(first, tokens, ids, is_score, acts)  # type: ignore[arg-type]
    assert cache.kinds() == {"feature", "planted"}
    assert [b.first_window for b in cache.batches] == [0, 4]  # the third batch lies past window 6
    second = cache.batches[1]
    assert second.tokens.tolist() == tokens[:2].tolist() and second.window_ids.tolist() == [4, 5]

    def bits(acts: torch.Tensor) -> torch.Tensor:
        return acts.view(torch.int32)

    assert torch.equal(bits(cache.activations(cache.batches[0], "feature").to_dense()), bits(sparse))
    assert torch.equal(bits(cache.activations(second, "feature").to_dense()), bits(sparse[:2]))
    assert torch.equal(bits(cache.activations(second, "planted").to_dense()), bits(coded[:2]))
