"""A batch's activations kept sparse answer every question the harvest asks exactly as the dense
tensor does: window maxima, chosen rows and windows, positive entries, and (to rounding) column sums."""

from __future__ import annotations

import pytest
import torch

from sae.autoencoder import SAEConfig, SparseAutoencoder
from sae.harvest_state import NOT_COUNTED, log_bin
from sae.unit_acts import DenseActs, SparseActs


def _sparse_batch(n_windows: int, ctx: int, units: int, density: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n_windows, ctx, units)
    values = torch.rand(shape, generator=g) * torch.exp(3 * torch.randn(shape, generator=g))  # wide range
    return torch.where(torch.rand(shape, generator=g) < density, values, 0.0)


@pytest.mark.parametrize("units", [64, 5])
def test_sparse_and_dense_batches_answer_alike(units: int) -> None:
    acts = _sparse_batch(6, 16, units, 0.1) - 0.5 * _sparse_batch(6, 16, units, 0.05, seed=1)
    acts[2, :, 0] = -1.0  # every position listed and negative: the window max is not 0
    dense, sparse = DenseActs(acts), SparseActs.from_dense(acts)
    assert torch.equal(sparse.to_dense(), acts)
    assert torch.equal(sparse.window_max, dense.window_max)
    assert float(sparse.window_max[0, 2]) == -1.0
    unit, window = torch.tensor([0, 3, units - 1, 1]), torch.tensor([2, 5, 0, 0])
    assert torch.equal(sparse.rows(unit, window), dense.rows(unit, window))
    assert torch.equal(sparse.windows(torch.tensor([4, 1])), dense.windows(torch.tensor([4, 1])))
    assert sparse.column_sum().dtype == torch.float64
    assert torch.allclose(sparse.column_sum(), dense.column_sum(), rtol=1e-12, atol=0)
    assert torch.allclose(dense.column_sum(), acts.double().reshape(-1, units).sum(0), rtol=1e-12, atol=0)
    assert torch.equal(sparse.bin_counts(log_bin, NOT_COUNTED), dense.bin_counts(log_bin, NOT_COUNTED))
    assert int(dense.bin_counts(log_bin, NOT_COUNTED).sum()) == int((acts > 0).sum())
    head = sparse.head(2)
    assert head.n_windows == 2 and torch.equal(head.to_dense(), acts[:2])


def test_an_encoder_code_drops_the_separator_positions() -> None:
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(architecture="topk", d_in=8, d_sae=64, k=4))
    x = torch.randn(3, 4, 8)
    text = torch.ones(3, 4, dtype=torch.bool)
    text[:, 0] = False
    acts = SparseActs.from_code(sae.encode_sparse(x.reshape(-1, 8)), 3, 4, text)
    assert torch.equal(acts.to_dense(), sae.encode(x) * text[..., None])
