"""How good is a subject model? Held-out loss against unigram and bigram baselines.

All three are nats per predicted token on the same held-out windows; the n-gram baselines are fit on
the training split (the bigram with add-one smoothing), so a model must beat them to be worth
studying.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel

from sae.corpus import open_corpus, select_split
from sae.streaming import token_batches
from sae.subject.models import SubjectModel
from sae.windows import tokenize_all


class SubjectEval(BaseModel):
    heldout_loss: float
    unigram_loss: float
    bigram_loss: float
    heldout_tokens: int
    train_tokens: int


def ngram_losses(train_ids: np.ndarray, eval_windows: np.ndarray, vocab: int) -> tuple[float, float]:
    """(unigram, add-one bigram) loss in nats of each window's next tokens [:, 1:]."""
    uni = np.bincount(train_ids, minlength=vocab).astype(np.float64) + 1.0
    uni_logp = np.log(uni / uni.sum())
    pair = train_ids[:-1].astype(np.int64) * vocab + train_ids[1:]
    counts = np.bincount(pair, minlength=vocab * vocab).reshape(vocab, vocab).astype(np.float64)
    row = counts.sum(axis=1, keepdims=True)
    prev, nxt = eval_windows[:, :-1].reshape(-1), eval_windows[:, 1:].reshape(-1)
    bigram_logp = np.log((counts[prev, nxt] + 1.0) / (row[prev, 0] + vocab))
    return float(-uni_logp[nxt].mean()), float(-bigram_logp.mean())


@torch.no_grad()
def evaluate_subject(
    subject: SubjectModel, corpus: str = "stdlib", max_tokens: int = 500_000, batch_size: int = 64
) -> SubjectEval:
    windows, losses = [], []
    for _, tokens in token_batches(
        subject, select_split(open_corpus(corpus), "heldout"), batch_size=batch_size, max_tokens=max_tokens
    ):
        logits = subject.logits(tokens)
        losses.append(F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="none"))
        windows.append(tokens.cpu().numpy())
    eval_windows = np.concatenate(windows)
    train_ids = tokenize_all(select_split(open_corpus(corpus), "train"), subject.tokenizer)
    unigram, bigram = ngram_losses(train_ids, eval_windows, subject.tokenizer.vocab_size)
    return SubjectEval(
        heldout_loss=float(torch.cat(losses).mean()),
        unigram_loss=unigram,
        bigram_loss=bigram,
        heldout_tokens=int(eval_windows[:, 1:].size),
        train_tokens=len(train_ids),
    )
