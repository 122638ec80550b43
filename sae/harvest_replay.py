"""The first pass's unit activations of the windows the hard-negative pass reads again, kept so
that pass need not run the subject model and the SAE a second time.

A kind is kept as the exact entries of its activations that are not +0.0 (signed zeros and NaNs
included, so the rebuilt batch is bit-identical); SAE features have few, and arrive as such. A kind
too dense to be worth keeping (neurons) is dropped at its first dense batch and recomputed by the
hard pass as before. What is kept covers at most `hard_negative_tokens` tokens, so it does not grow
with the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sae.records import UnitKind
from sae.unit_acts import Activations, SparseActs, same_size_int

MAX_DENSITY = 1 / 8  # keep a kind while at most this fraction of its entries is nonzero


@dataclass
class KeptBatch:
    first_window: int
    tokens: torch.Tensor  # [W, ctx]
    window_ids: torch.Tensor  # [W]
    is_score: torch.Tensor  # [W]
    # kind -> (units, each entry's unit * W * ctx + row, in SparseActs's order; its value)
    entries: dict[UnitKind, tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=dict)


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
        acts: dict[UnitKind, Activations],
    ) -> None:
        """Keep the part of a first-pass batch that lies within the hard pass's windows."""
        n = self.n_windows - first_window
        if n <= 0:
            return
        kept = KeptBatch(first_window, tokens[:n], window_ids[:n], is_score[:n])
        for kind, unit_acts in acts.items():
            if kind in self.dropped:
                continue
            if isinstance(unit_acts, SparseActs):
                part = unit_acts.head(min(n, unit_acts.n_windows))
            else:
                dense = unit_acts.to_dense()[:n]
                nonzero = int((dense.view(same_size_int(dense)) != 0).sum())
                if nonzero > MAX_DENSITY * dense.numel():
                    self.dropped.add(kind)
                    for batch in self.batches:
                        batch.entries.pop(kind, None)
                    continue
                part = SparseActs.from_dense(dense)
            size = part.n_windows * part.ctx
            flat = part.unit * size + part.row
            small = flat.to(torch.int32) if part.units * size < 2**31 else flat  # a third less to keep
            kept.entries[kind] = (part.units, small, part.values)
        self.batches.append(kept)

    def kinds(self) -> set[UnitKind]:
        """The kinds kept for every batch."""
        return set(self.batches[0].entries) if self.batches else set()

    @staticmethod
    def activations(batch: KeptBatch, kind: UnitKind) -> SparseActs:
        """The batch's activations of `kind`, bit for bit as the first pass had them."""
        units, flat, values = batch.entries[kind]
        n_windows, ctx = batch.tokens.shape
        unit, row = flat.long().div(n_windows * ctx, rounding_mode="floor"), flat.long() % (n_windows * ctx)
        return SparseActs(unit, row, values, n_windows, ctx, units)
