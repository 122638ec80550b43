"""The tokens of harvested windows, read again from the corpus by window id.

A harvest keeps, for every unit and slot, a window's id and the unit's activations over it; the
window's tokens are the same for every unit and slot that keeps it, and the corpus holds them
already. Copying them into each slot as windows win (a row per winner, ~60k rows a batch while slots
fill) cost the harvest about a fifth of its bookkeeping and half its state; reading the few
thousand distinct windows again when they are wanted is one tokenizer pass over the harvested span.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sae.corpus import Split, open_corpus, select_split
from sae.errors import UserError
from sae.streaming import token_batches
from sae.subject.models import SubjectModel


@dataclass
class WindowTokens:
    """The tokens of a set of windows: `ids` [n] sorted, `tokens` [n + 1, ctx] int32 (row i holds
    window ids[i]; the last row, zeros, answers the id -1 of an empty slot)."""

    ids: torch.Tensor
    tokens: torch.Tensor

    def of(self, window_id: torch.Tensor) -> torch.Tensor:
        """[..., ctx]: the tokens of each window id in `window_id` [...] (zeros for -1)."""
        position = torch.searchsorted(self.ids, window_id.clamp(min=0).contiguous())
        position = torch.where(window_id >= 0, position, len(self.ids))
        return self.tokens.index_select(0, position.reshape(-1)).view(*window_id.shape, self.tokens.shape[1])


def read_windows(subject: SubjectModel, corpus: str, split: Split, ctx: int, window_id: torch.Tensor) -> WindowTokens:
    """The tokens of the windows named in `window_id` (any shape; -1 ignored), read from the stream a
    harvest of `corpus`'s `split` in `ctx`-token windows reads (window i is the i-th of that stream),
    on `window_id`'s device."""
    wanted = torch.unique(window_id[window_id >= 0].cpu())  # sorted
    tokens = torch.zeros(len(wanted) + 1, ctx, dtype=torch.int32)
    found = torch.zeros(len(wanted), dtype=torch.bool)
    if len(wanted):
        docs = select_split(open_corpus(corpus), split)
        stop = (int(wanted[-1]) + 1) * ctx
        for first, batch in token_batches(subject, docs, batch_size=256, ctx=ctx, max_tokens=stop):
            ids = torch.arange(first, first + batch.shape[0])
            position = torch.searchsorted(wanted, ids).clamp(max=len(wanted) - 1)
            hit = wanted[position] == ids
            tokens[position[hit]] = batch.cpu()[hit].to(torch.int32)
            found[position[hit]] = True
    if not bool(found.all()):
        missing = int(wanted[~found][0])
        raise UserError(
            f"the corpus {corpus!r} ({split} documents) no longer holds window {missing} of this harvest: "
            "it changed since the harvest, whose example tokens are read from it; harvest again"
        )
    return WindowTokens(wanted.to(window_id.device), tokens.to(window_id.device))
