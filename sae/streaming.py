"""Streaming a corpus split through a subject model, one batch of activations at a time.

Only one [batch, seq, width] block of activations exists at any moment; the corpus's activations
as a whole are never held, so the token budget can be as large as the corpus.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from sae.corpus import Document
from sae.distributed import SINGLE, Shard
from sae.subject.models import SubjectModel
from sae.windows import DEFAULT_CONTEXT, batched_windows, token_windows


@dataclass
class ActivationBatch:
    first_window: int  # stream index of tokens[0]; window ids are first_window + row
    tokens: torch.Tensor  # [batch, seq] int64, on the model's device
    activations: torch.Tensor  # [batch, seq, width]


def context_length(subject: SubjectModel, ctx: int | None) -> int:
    return min(ctx or DEFAULT_CONTEXT, subject.n_ctx)


def token_batches(
    subject: SubjectModel,
    docs: Iterable[Document],
    *,
    batch_size: int = 64,
    ctx: int | None = None,
    max_tokens: int | None = None,
    skip_windows: int = 0,
    shard: Shard = SINGLE,
) -> Iterator[tuple[int, torch.Tensor]]:
    """(first window id, tokens [batch, ctx]) on the model's device, stopping at `max_tokens`.

    `skip_windows` starts later in the stream (to resume) without running the model on what it skips;
    a `shard` gets only its own batches (batch i goes to rank i mod world), with their stream ids.
    """
    ctx = context_length(subject, ctx)
    max_windows = None if max_tokens is None else max(1, max_tokens // ctx)
    seen = skip_windows
    max_windows = None if max_windows is None else max_windows + skip_windows
    windows = itertools.islice(token_windows(docs, subject.tokenizer, ctx), skip_windows, None)
    for index, batch in enumerate(batched_windows(windows, batch_size)):
        if max_windows is not None and seen + len(batch) > max_windows:
            batch = batch[: max_windows - seen]
        if len(batch) == 0:
            return
        if shard.owns(index):
            yield seen, torch.from_numpy(batch).to(subject.device)
        seen += len(batch)
        if max_windows is not None and seen >= max_windows:
            return


def stream_activations(
    subject: SubjectModel,
    docs: Iterable[Document],
    hook: str,
    *,
    batch_size: int = 64,
    ctx: int | None = None,
    max_tokens: int | None = None,
    dtype: torch.dtype | None = torch.float32,
    skip_windows: int = 0,
    shard: Shard = SINGLE,
) -> Iterator[ActivationBatch]:
    """Activations at `hook` for consecutive windows of `docs` (dtype None keeps the model's), of
    the shard's batches only."""
    subject.module_at(hook)  # fail on a bad hook before any tokenising
    batches = token_batches(
        subject, docs, batch_size=batch_size, ctx=ctx, max_tokens=max_tokens, skip_windows=skip_windows, shard=shard
    )
    for first, tokens in batches:
        acts = subject.activations(tokens, hook)
        yield ActivationBatch(first, tokens, acts if dtype is None else acts.to(dtype))
