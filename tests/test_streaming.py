"""Streaming activations: the token budget, resuming with `skip_windows`, and the per-batch bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae.corpus import Document, open_corpus, select_split
from sae.streaming import stream_activations, token_batches
from sae.subject.models import BUILTIN_HOOK, SubjectModel
from sae.windows import token_windows


def heldout():
    return select_split(open_corpus("stdlib"), "heldout")


@pytest.mark.parametrize("max_tokens, batch_size, ctx", [(1000, 7, 64), (2048, 16, 32), (64 * 40, 64, 64)])
def test_token_budget_is_respected(subject: SubjectModel, max_tokens: int, batch_size: int, ctx: int) -> None:
    batches = list(token_batches(subject, heldout(), batch_size=batch_size, ctx=ctx, max_tokens=max_tokens))
    total = sum(tokens.numel() for _, tokens in batches)
    assert total == (max_tokens // ctx) * ctx <= max_tokens
    assert [first for first, _ in batches] == list(range(0, max_tokens // ctx, batch_size))
    assert all(tokens.shape[0] <= batch_size and tokens.shape[1] == ctx for _, tokens in batches)


def test_skip_windows_resumes_exactly_where_a_full_stream_would_be(subject: SubjectModel) -> None:
    full = list(stream_activations(subject, heldout(), BUILTIN_HOOK, batch_size=4, max_tokens=64 * 14))
    full_tokens = torch.cat([b.tokens for b in full])
    full_acts = torch.cat([b.activations for b in full])
    resumed = list(
        stream_activations(subject, heldout(), BUILTIN_HOOK, batch_size=4, max_tokens=64 * 9, skip_windows=5)
    )
    assert [b.first_window for b in resumed] == [5, 9, 13]
    assert [b.tokens.shape[0] for b in resumed] == [4, 4, 1]
    torch.testing.assert_close(torch.cat([b.tokens for b in resumed]), full_tokens[5:])
    # the same tokens at the same positions give the same activations, whatever the batch
    torch.testing.assert_close(torch.cat([b.activations for b in resumed]), full_acts[5:], atol=1e-5, rtol=1e-5)


def test_each_item_is_bounded_by_batch_ctx_width(subject: SubjectModel) -> None:
    widths = {subject.hook_width(BUILTIN_HOOK)}
    expected_first = 0
    for item in stream_activations(subject, heldout(), BUILTIN_HOOK, batch_size=5, ctx=32, max_tokens=32 * 23):
        assert item.first_window == expected_first
        batch, ctx, width = item.activations.shape
        assert batch <= 5 and ctx == 32 and width in widths
        assert item.tokens.shape == (batch, ctx) and item.tokens.dtype == torch.int64
        assert item.activations.dtype == torch.float32
        expected_first += batch
    assert expected_first == 23


def test_context_is_capped_at_the_model_context_and_stream_ends_with_the_corpus(subject: SubjectModel) -> None:
    docs = [Document(id=str(i), text=f"value_{i} = compute({i}) + 1\n" * 8) for i in range(30)]
    windows = list(token_windows(docs, subject.tokenizer, subject.n_ctx))
    items = list(stream_activations(subject, docs, BUILTIN_HOOK, batch_size=8, ctx=10 * subject.n_ctx, dtype=None))
    assert all(item.tokens.shape[1] == subject.n_ctx for item in items)
    assert all(item.activations.dtype == subject.dtype for item in items)
    streamed = torch.cat([item.tokens for item in items]).numpy()
    np.testing.assert_array_equal(streamed, np.stack(windows))
