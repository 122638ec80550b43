"""Matching units across sets: correlation from running sums, decoder cosines, and the shared stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae.autoencoder import SAEConfig, SparseAutoencoder, SparseCode
from sae.corpus import open_corpus, select_split
from sae.errors import UserError
from sae.unit_matching import CorrelationAccumulator, UnitSet, best_cosines, check_same_tokenizer, correlate


def _sparse_sae(d_in: int, d_sae: int, k: int, seed: int) -> SparseAutoencoder:
    torch.manual_seed(seed)
    return SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=d_sae, k=k))


def test_correlations_equal_numpy_over_batches_dense_and_sparse():
    sae = _sparse_sae(16, 40, 4, seed=0)
    x = torch.randn(300, 16)
    b = torch.randn(300, 7)
    b[:, 3] = 0.0  # a constant unit has no correlation
    dense_acc, sparse_acc = CorrelationAccumulator(40, 7), CorrelationAccumulator(40, 7)
    for rows in (slice(0, 100), slice(100, 250), slice(250, 300)):
        dense_acc.update(sae.encode(x[rows]), b[rows])
        sparse_acc.update(sae.encode_sparse(x[rows]), b[rows])
    a = sae.encode(x).numpy().astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.corrcoef(a.T, b.numpy().T)[:40, 40:]
    np.testing.assert_allclose(dense_acc.correlations().numpy(), expected, atol=1e-5, equal_nan=True)
    np.testing.assert_allclose(sparse_acc.correlations().numpy(), expected, atol=1e-5, equal_nan=True)
    assert torch.isnan(dense_acc.correlations()[:, 3]).all()
    chosen = torch.randint(0, 7, (40,), generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(sparse_acc.at(chosen).numpy(), expected[np.arange(40), chosen.numpy()], atol=1e-5)


def _code(dense: torch.Tensor) -> SparseCode:
    rows, cols = dense.nonzero(as_tuple=True)
    return SparseCode(rows, cols, dense[rows, cols], dense.shape[0], dense.shape[1])


def test_two_sparse_codes_correlate_as_their_dense_forms():
    """Two TopK codes (k entries on every token), and codes whose counts per token vary (none on some)."""
    x = torch.randn(200, 16)
    topk = (_sparse_sae(16, 30, 4, seed=0).encode_sparse(x), _sparse_sae(16, 20, 3, seed=1).encode_sparse(x))
    ragged_a, ragged_b = topk[0].to_dense(), topk[1].to_dense()
    ragged_a[ragged_a < ragged_a[ragged_a > 0].median()] = 0.0
    ragged_a[50:60], ragged_b[70:75] = 0.0, 0.0
    ragged = (_code(ragged_a), _code(ragged_b))
    assert torch.bincount(ragged[0].rows, minlength=200).unique().numel() > 3
    for a, b in (topk, ragged):
        sparse_acc, dense_acc = CorrelationAccumulator(30, 20), CorrelationAccumulator(30, 20)
        sparse_acc.update(a, b)
        dense_acc.update(a.to_dense(), b.to_dense())
        torch.testing.assert_close(sparse_acc.cross, dense_acc.cross, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sparse_acc.correlations(), dense_acc.correlations(), equal_nan=True)


def test_best_matches_find_a_permuted_copy_and_skip_dead_units():
    x = torch.randn(500, 6)
    x[:, 5] = 0.0  # dead on these tokens
    perm = torch.tensor([2, 0, 5, 1, 4, 3])
    acc = CorrelationAccumulator(6, 6)
    acc.update(x, x[:, perm] * 3.0 + 1.0)  # scale and shift do not change correlation
    index, corr = acc.best_matches(chunk=4)
    live = torch.arange(5)
    assert index[live].tolist() == [int((perm == i).nonzero()) for i in range(5)]
    assert torch.allclose(corr[live], torch.ones(5), atol=1e-5)
    assert torch.isnan(corr[5])


def test_best_cosines_find_the_nearest_direction():
    b = torch.randn(50, 8)
    a = b[[7, 3, 49]] + 0.01 * torch.randn(3, 8)
    index, cos = best_cosines(a, b, chunk=2)
    assert index.tolist() == [7, 3, 49]
    assert (cos > 0.99).all()


def test_correlate_streams_the_subject_once_for_neurons_and_features(subject):
    hook = "blocks.0.mlp.act"
    width = subject.hook_width(hook)
    sae = _sparse_sae(width, 64, 8, seed=1)
    shuffled = _sparse_sae(width, 64, 8, seed=1)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the same features in another order
        shuffled.W_enc.copy_(sae.W_enc[:, perm])
        shuffled.b_enc.copy_(sae.b_enc[perm])
        shuffled.W_dec.copy_(sae.W_dec[perm])
    sets = [
        UnitSet("neurons", subject, hook),
        UnitSet("sae", subject, hook, sae),
        UnitSet("shuffled", subject, hook, shuffled),
    ]
    docs = select_split(open_corpus("stdlib"), "heldout")
    result = correlate(sets, [(0, 0), (1, 2)], docs, max_tokens=2048, batch_size=8, progress=False)
    assert result[(0, 0)].tokens == 2048
    index, corr = result[(0, 0)].best_matches()
    live = ~torch.isnan(corr)
    assert live.sum() > width // 2
    assert torch.equal(index[live], torch.arange(width)[live])
    index, corr = result[(1, 2)].best_matches()
    live = ~torch.isnan(corr)
    assert live.any()
    assert torch.equal(perm[index[live]], torch.arange(64)[live])
    cos_index, cos = best_cosines(sets[1].directions(), sets[2].directions())
    assert torch.equal(perm[cos_index], torch.arange(64))
    assert torch.allclose(cos, torch.ones(64), atol=1e-5)


class _OtherVocabulary:
    vocab_size = 3

    def token_strings(self, ids):
        return ["x" for _ in ids]


def test_subjects_with_different_tokenizers_are_refused(subject):
    import dataclasses

    other = dataclasses.replace(subject, tokenizer=_OtherVocabulary())
    with pytest.raises(UserError, match="different tokenizers"):
        check_same_tokenizer([UnitSet("a", subject, "blocks.0.mlp.act"), UnitSet("b", other, "blocks.0.mlp.act")])
