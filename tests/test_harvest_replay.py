"""The hard-negative pass's copy of the first pass's activations: exact, and only for sparse kinds."""

from __future__ import annotations

import torch

from sae.harvest_replay import HardPassCache


def test_sparse_kinds_are_kept_bit_for_bit_and_dense_ones_dropped() -> None:
    sparse = torch.zeros(4, 8, 16)
    sparse[0, 1, 2], sparse[1, 0, 0], sparse[3, 7, 15] = 1.5, -0.0, float("nan")
    dense = torch.randn(4, 8, 16)
    tokens = torch.arange(32).reshape(4, 8)
    cache = HardPassCache(n_windows=6)
    cache.add(0, tokens, torch.arange(4), torch.zeros(4, dtype=torch.bool), {"neuron": dense, "feature": sparse})
    cache.add(4, tokens, torch.arange(4, 8), torch.ones(4, dtype=torch.bool), {"neuron": dense, "feature": sparse})
    cache.add(8, tokens, torch.arange(8, 12), torch.ones(4, dtype=torch.bool), {"neuron": dense, "feature": sparse})
    assert cache.kinds() == {"feature"}
    assert [b.first_window for b in cache.batches] == [0, 4]  # the third batch lies past window 6
    second = cache.batches[1]
    assert second.tokens.tolist() == tokens[:2].tolist() and second.window_ids.tolist() == [4, 5]
    assert torch.equal(cache.activations(cache.batches[0], "feature").view(torch.int32), sparse.view(torch.int32))
    assert torch.equal(cache.activations(second, "feature").view(torch.int32), sparse[:2].view(torch.int32))
