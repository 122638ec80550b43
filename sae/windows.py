"""Cutting a corpus into fixed-length token windows.

Policy: each document is encoded as [BOS] + tokens(text); the documents of one split are
concatenated in corpus order and the stream is cut into consecutive, non-overlapping windows of
`ctx` tokens (default 64); the last partial window is dropped. A window may therefore span a
document boundary, which the BOS token marks, as in GPT-2 style pretraining. Windows are numbered
from 0 in stream order, so (split, ctx, window number) names the same tokens on every run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from sae.corpus import PIECE_CHARS, Document
from sae.errors import UserError
from sae.tokenizer import TextTokenizer

DEFAULT_CONTEXT = 64
_ENCODE_CHUNK = 32  # documents per tokenizer call: fast (batched) yet never the whole corpus


def token_stream(docs: Iterable[Document], tokenizer: TextTokenizer) -> Iterator[np.ndarray]:
    """Each document's [BOS] + ids as an int64 array, in corpus order (a document's later pieces
    without the BOS). The tokenizer gets at most `_ENCODE_CHUNK` texts and about PIECE_CHARS
    characters per call, so its memory does not follow the corpus's longest document."""
    chunk: list[Document] = []
    chars = 0

    def flush() -> Iterator[np.ndarray]:
        for doc, ids in zip(chunk, tokenizer.encode_batch([d.text for d in chunk])):
            yield np.asarray(ids if doc.continues else [tokenizer.bos_id, *ids], dtype=np.int64)
        chunk.clear()

    for doc in docs:
        chunk.append(doc)
        chars += len(doc.text)
        if len(chunk) == _ENCODE_CHUNK or chars >= PIECE_CHARS:
            yield from flush()
            chars = 0
    if chunk:
        yield from flush()


def token_windows(
    docs: Iterable[Document], tokenizer: TextTokenizer, ctx: int = DEFAULT_CONTEXT
) -> Iterator[np.ndarray]:
    """Consecutive [ctx] windows of the concatenated document stream (see module docstring)."""
    if ctx < 2:
        raise UserError(f"context length must be at least 2 tokens, got {ctx}")
    buffer = np.empty(0, dtype=np.int64)
    produced = False
    for ids in token_stream(docs, tokenizer):
        buffer = np.concatenate([buffer, ids])
        n_full = len(buffer) // ctx
        for i in range(n_full):
            produced = True
            yield buffer[i * ctx : (i + 1) * ctx]
        buffer = buffer[n_full * ctx :]
    if not produced:
        raise UserError(f"the corpus has fewer than {ctx} tokens: not even one window")


def batched_windows(windows: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """Stack windows into [batch, ctx] arrays; the last batch may be smaller."""
    batch: list[np.ndarray] = []
    for w in windows:
        batch.append(w)
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def tokenize_all(docs: Iterable[Document], tokenizer: TextTokenizer) -> np.ndarray:
    """The whole stream as one flat array (for subject-model training: ~10M ids fit easily)."""
    parts = list(token_stream(docs, tokenizer))
    if not parts:
        raise UserError("the corpus has no documents")
    return np.concatenate(parts)
