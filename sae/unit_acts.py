"""One batch of a unit kind's activations [W, ctx, U], in the layout that suits the kind: dense for
neurons (every entry is nonzero), the nonzero entries alone for SAE features (a few dozen per token
out of thousands). The harvest asks both the same few questions (each window's maximum, the rows of
chosen windows, column sums, a histogram of the entries), so a sparse kind costs what its entries cost,
never W * ctx * U.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from sae.autoencoder import SparseCode

# values [...] -> the bin of each [...], or n_bins for a value in none (see `bin_counts`)
BinOf = Callable[[torch.Tensor], torch.Tensor]

# an integer type of each float width: a float is +0.0 exactly when its bits, read as one, are 0
_SAME_SIZE_INT = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def same_size_int(floats: torch.Tensor) -> torch.dtype:
    """The integer type to view `floats` as, so that `!= 0` finds every entry that is not +0.0."""
    return _SAME_SIZE_INT[floats.element_size()]


class DenseActs:
    """A batch held whole, [W, ctx, U], read in the layout it comes in: every question is a
    reduction over positions or a gather, never a transposed copy of the batch."""

    def __init__(self, acts: torch.Tensor) -> None:
        self.acts = acts
        self.n_windows, self.ctx, self.units = acts.shape

    @functools.cached_property
    def window_max(self) -> torch.Tensor:
        """[U, W]."""
        return self.acts.amax(dim=1).t()

    def rows(self, unit: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        """[n, ctx]: the activations of `unit[i]` over window `window[i]`."""
        return self.acts[window, :, unit]

    def windows(self, window: torch.Tensor) -> torch.Tensor:
        """[U, m, ctx]: every unit's activations over the chosen windows."""
        return self.acts[window].permute(2, 0, 1)

    def column_sum(self) -> torch.Tensor:
        """[U] sums in float64, so the order of the additions does not show in the statistics."""
        return self.acts.reshape(-1, self.units).sum(0, dtype=torch.float64)

    def bin_counts(self, bin_of: BinOf, n_bins: int) -> torch.Tensor:
        """[U, n_bins]: how many entries of each unit fall in each bin (`bin_of` maps values to a
        bin, or to n_bins for none). Every entry is binned: finding the positive ones first (a
        `nonzero` over the batch) costs more than binning them all."""
        flat = self.acts.reshape(-1, self.units)
        unit = torch.arange(self.units, dtype=torch.int32, device=flat.device)
        return _count(unit, bin_of(flat), self.units, n_bins)

    def to_dense(self) -> torch.Tensor:
        return self.acts


@dataclass
class SparseActs:
    """A batch [W, ctx, U] as its entries that are not +0.0 (every other entry is +0.0), sorted by
    unit, then by position (`row` = window * ctx + position in the window)."""

    unit: torch.Tensor  # [nnz] int64
    row: torch.Tensor  # [nnz] int64
    values: torch.Tensor  # [nnz]
    n_windows: int
    ctx: int
    units: int

    @classmethod
    def build(
        cls, unit: torch.Tensor, row: torch.Tensor, values: torch.Tensor, n_windows: int, ctx: int, units: int
    ) -> SparseActs:
        order = (unit * (n_windows * ctx) + row).argsort()
        return cls(unit[order], row[order], values[order], n_windows, ctx, units)

    @classmethod
    def from_code(cls, code: SparseCode, n_windows: int, ctx: int, text: torch.Tensor) -> SparseActs:
        """From an encoder's code of the W * ctx positions, dropping those where `text` [W, ctx] is
        False (separators count as 0)."""
        keep = text.reshape(-1)[code.rows]
        return cls.build(code.cols[keep], code.rows[keep], code.vals[keep], n_windows, ctx, code.d_sae)

    @classmethod
    def from_dense(cls, acts: torch.Tensor) -> SparseActs:
        """Exact, signed zeros and NaNs included: the dense tensor is rebuilt bit for bit."""
        n_windows, ctx, units = acts.shape
        flat = acts.reshape(-1, units)
        row, unit = (flat.view(same_size_int(flat)) != 0).nonzero(as_tuple=True)
        return cls.build(unit, row, flat[row, unit], n_windows, ctx, units)

    def __len__(self) -> int:
        return len(self.values)

    def head(self, n_windows: int) -> SparseActs:
        """The first `n_windows` windows."""
        keep = self.row < n_windows * self.ctx
        return SparseActs(self.unit[keep], self.row[keep], self.values[keep], n_windows, self.ctx, self.units)

    @functools.cached_property
    def _pairs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(unit * W + window of each entry, the distinct such pairs in order, entries per pair)."""
        key = self.unit * self.n_windows + torch.div(self.row, self.ctx, rounding_mode="floor")
        pairs, counts = torch.unique_consecutive(key, return_counts=True)
        return key, pairs, counts

    @functools.cached_property
    def window_max(self) -> torch.Tensor:
        """[U, W]; a window with any unlisted entry has 0 among its values."""
        key, pairs, counts = self._pairs
        size = self.units * self.n_windows
        out = torch.full((size,), -torch.inf, dtype=self.values.dtype, device=self.values.device)
        out.scatter_reduce_(0, key, self.values, "amax")
        listed = torch.zeros(size, dtype=torch.long, device=key.device)
        listed[pairs] = counts
        out = torch.where(listed < self.ctx, out.clamp(min=0), out)
        return out.view(self.units, self.n_windows)

    @functools.cached_property
    def _pair_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(for each unit * W + window, its row in the table; the table [pairs + 1, ctx] of every
        listed (unit, window) pair's activations, and a last row of zeros for the unlisted ones).
        Built once per batch, so every merge's fetch is two gathers."""
        key, pairs, _ = self._pairs
        where = torch.full((self.units * self.n_windows,), len(pairs), dtype=torch.long, device=key.device)
        where[pairs] = torch.arange(len(pairs), device=key.device)
        table = torch.zeros(len(pairs) + 1, self.ctx, dtype=self.values.dtype, device=self.values.device)
        table.view(-1)[where[key] * self.ctx + self.row % self.ctx] = self.values
        return where, table

    def rows(self, unit: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        """[n, ctx]: the activations of `unit[i]` over window `window[i]`."""
        where, table = self._pair_rows
        return table.index_select(0, where[unit * self.n_windows + window])  # (indexing with [] copies rows far slower)

    def windows(self, window: torch.Tensor) -> torch.Tensor:
        """[U, m, ctx]: every unit's activations over the chosen windows."""
        where, table = self._pair_rows
        pair = where.view(self.units, self.n_windows).index_select(1, window)  # [U, m]
        return table.index_select(0, pair.view(-1)).view(self.units, len(window), self.ctx)

    def column_sum(self) -> torch.Tensor:
        """[U] sums in float64 from the entries alone (equal to the dense sum up to rounding order)."""
        total = torch.zeros(self.units, dtype=torch.float64, device=self.values.device)
        return total.index_add_(0, self.unit, self.values.double())

    def bin_counts(self, bin_of: BinOf, n_bins: int) -> torch.Tensor:
        """As `DenseActs.bin_counts`; the unlisted entries (+0.0) are in no bin."""
        return _count(self.unit, bin_of(self.values), self.units, n_bins)

    def to_dense(self) -> torch.Tensor:
        dense = torch.zeros(self.n_windows * self.ctx, self.units, dtype=self.values.dtype, device=self.values.device)
        dense[self.row, self.unit] = self.values
        return dense.view(self.n_windows, self.ctx, self.units)


Activations = DenseActs | SparseActs


def _count(unit: torch.Tensor, bins: torch.Tensor, units: int, n_bins: int) -> torch.Tensor:
    """[units, n_bins] counts of (unit, bin) pairs (broadcast together); bin n_bins is dropped."""
    counts = torch.bincount((unit * (n_bins + 1) + bins).view(-1), minlength=units * (n_bins + 1))
    return counts.view(units, n_bins + 1)[:, :n_bins]
