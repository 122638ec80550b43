"""The first pass's unit activations of the windows the hard-negative pass reads again, kept so
that pass need not run the subject model and the SAE a second time.

A kind is kept as the exact entries of its activations that are not +0.0 (signed zeros and NaNs
included, so the rebuilt tensor is bit-identical); SAE features have few. A kind too dense to be
worth keeping (neurons) is dropped at its first dense batch and recomputed by the hard pass as
before. What is kept covers at most `hard_negative_tokens` tokens, so it does not grow with the
corpus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sae.records import UnitKind

MAX_DENSITY = 1 / 8  # keep a kind while at most this fraction of its entries is nonzero
# an integer type of each float width: a float is +0.0 exactly when its bits, read as one, are 0
_SAME_SIZE_INT = {2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass
class KeptBatch:
    first_window: int
    tokens: torch.Tensor  # [W, ctx]
    window_ids: torch.Tensor  # [W]
    is_score: torch.Tensor  # [W]
    entries: dict[UnitKind, tuple[torch.Size, torch.Tensor, torch.Tensor]] = field(default_factory=dict)


class HardPassCache:
    """Batches of the first `n_windows` windows of the stream, as the first pass saw them."""

    def __init__(self, n_windows: int) -> None:
        self.n_windows = n_windows
        self.batches: list[KeptBatch] = []
        self.dropped: set[UnitKind] = set()

    def add(
        self,
        first_window: int,
        tokens: torch.Tensor,
        window_ids: torch.Tensor,
        is_score: torch.Tensor,
        acts: dict[UnitKind, torch.Tensor],
    ) -> None:
        """Keep the part of a first-pass batch that lies within the hard pass's windows."""
        n = self.n_windows - first_window
        if n <= 0:
            return
        kept = KeptBatch(first_window, tokens[:n], window_ids[:n], is_score[:n])
        for kind, unit_acts in acts.items():
            if kind in self.dropped:
                continue
            part = unit_acts[:n]
            flat = part.reshape(-1)
            where = (flat.view(_SAME_SIZE_INT[flat.element_size()]) != 0).nonzero().squeeze(1)  # not +0.0
            if len(where) > MAX_DENSITY * flat.numel():
                self.dropped.add(kind)
                for batch in self.batches:
                    batch.entries.pop(kind, None)
                continue
            small = where.to(torch.int32) if flat.numel() < 2**31 else where  # a third less to keep
            kept.entries[kind] = (part.shape, small, flat[where])
        self.batches.append(kept)

    def kinds(self) -> set[UnitKind]:
        """The kinds kept for every batch."""
        return set(self.batches[0].entries) if self.batches else set()

    @staticmethod
    def activations(batch: KeptBatch, kind: UnitKind) -> torch.Tensor:
        """The batch's activations of `kind`, bit for bit as the first pass had them."""
        shape, where, values = batch.entries[kind]
        dense = torch.zeros(shape, dtype=values.dtype, device=values.device)
        dense.view(-1)[where.long()] = values
        return dense
