"""The running, mergeable state of a harvest for one set of units (neurons or features).

Per unit it keeps, on the model's device and at a size fixed up front:
    stats      token count, active count, sum, max, log10 histogram of positive activations
    top        the `n_top` windows with the largest max activation, per split
    reservoir  a uniform sample of `reservoir` windows where the unit fires, per split (bottom-k of
               a random priority, so two shards' samples merge into a uniform sample of the union);
               quantile-stratified examples are drawn from it at the end
    low        the windows where the unit is least active, per split: a uniform sample of the
               windows where it never fires when there are enough, else the lowest by max
Each kept window stores its id and the unit's activation at every position; its tokens are the
corpus's, read again by id when they are wanted (sae.window_tokens), not copied for every unit and
slot that keeps the window. Nothing grows with the number of tokens seen.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from sae.unit_acts import Activations

HIST_EDGES_LOG10 = torch.linspace(-4, 3, 71)  # 0.1 decade bins from 1e-4 to 1e3


# fetch(units [n], candidates [n]) -> acts [n, ctx] of the chosen candidates
Fetch = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# fetch(windows [m]) -> every unit's acts [U, m, ctx] over the chosen windows
FetchWindows = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class WindowSlots:
    """K kept windows per unit, those with the largest `key` (slots are in no particular order)."""

    key: torch.Tensor  # [U, K] float; -inf marks an empty slot
    window_id: torch.Tensor  # [U, K] int64; -1 in empty slots
    rank: torch.Tensor  # [U, K] int64: `_ranking(key, window_id)`, kept rather than recomputed each merge
    acts: torch.Tensor  # [U, K, ctx] float32

    @classmethod
    def empty(cls, units: int, k: int, ctx: int, device: torch.device) -> WindowSlots:
        key = torch.full((units, k), -torch.inf, device=device)
        window_id = torch.full((units, k), -1, dtype=torch.long, device=device)
        return cls(
            key=key,
            window_id=window_id,
            rank=_ranking(key, window_id),
            acts=torch.zeros(units, k, ctx, device=device),
        )

    def merge(self, key: torch.Tensor, window_id: torch.Tensor, fetch: Fetch) -> None:
        """Keep the K largest keys among the current slots and W candidates per unit.

        key [U, W] (-inf: not a candidate), window_id [U, W]. Only winning candidates are fetched
        and written, each into a slot its unit evicts, so the cost follows the number of changes,
        not the size of the state.
        """
        if self.key.shape[1] == 0:
            return
        changed, evicted_slots, cand, new_key, new_rank = _winners(self.key, self.rank, key, window_id)
        if len(changed) == 0:
            return
        units = changed
        self.key[units, evicted_slots] = new_key
        self.rank[units, evicted_slots] = new_rank
        # a -inf candidate can win only an empty slot, which stays empty
        self.window_id[units, evicted_slots] = window_id[units, cand].masked_fill(new_key == -torch.inf, -1)
        flat = units * self.key.shape[1] + evicted_slots  # one row per winner: a row copy each
        self.acts.view(-1, self.acts.shape[2]).index_copy_(0, flat, fetch(units, cand).to(self.acts.dtype))

    def merge_shared(self, key: torch.Tensor, window_id: torch.Tensor, fetch: FetchWindows) -> None:
        """`merge` for candidates that every unit ranks alike (key [W], window_id [W]), into slots
        that hold the same windows for every unit (as such merges leave them): decided once, on
        the first unit, and written for all units at once. The state is the one `merge` leaves."""
        if self.key.shape[1] == 0:
            return
        _, evicted_slots, cand, new_key, new_rank = _winners(self.key[:1], self.rank[:1], key[None], window_id[None])
        if len(cand) == 0:
            return
        self.key[:, evicted_slots] = new_key
        self.rank[:, evicted_slots] = new_rank
        self.window_id[:, evicted_slots] = window_id[cand].masked_fill(new_key == -torch.inf, -1)
        self.acts.index_copy_(1, evicted_slots, fetch(cand).to(self.acts.dtype))

    def merge_slots(self, other: WindowSlots) -> None:
        """Fold another shard's slots in (for sharded harvests)."""
        self.merge(other.key, other.window_id, lambda u, c: other.acts[u, c])


_NEVER = torch.iinfo(torch.int64).min  # below every rank: a padding candidate never wins


def _ranking(key: torch.Tensor, window_id: torch.Tensor) -> torch.Tensor:
    """int64 that orders by key, then by lower window id: a total order, so the windows kept do not
    depend on the order they arrived in (one pass, or shards merged in any order). The float32 key's
    bits are made order-preserving as a signed int and fill the high half."""
    bits = key.float().contiguous().view(torch.int32)
    ordered = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).long()
    return (ordered << 32) + (2**31 - 1 - window_id)


def _winners(
    slot_key: torch.Tensor, slot_rank: torch.Tensor, key: torch.Tensor, window_id: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(unit, the slot it evicts, the candidate that takes it, its key, its rank) for every winning
    candidate of `key` [U, W] (windows `window_id` [U, W]) against slots of K keys per unit.

    A unit's K best of slots and candidates together are its slots less its j lowest plus its j best
    candidates, where j counts the i for which the i-th best candidate outranks the i-th lowest slot
    (a prefix, as one list falls and the other rises): two short sorts per changed unit, never a
    ranking of all K + W."""
    k = slot_key.shape[1]
    floor = slot_key.min(dim=1, keepdim=True).values
    # a candidate below its unit's lowest slot cannot win; one tied with it wins on a lower window
    # id; -inf is no candidate, even against an empty slot (-inf): floors are raised to the least float
    beats = key >= floor.clamp(min=torch.finfo(key.dtype).min)
    changed = beats.any(dim=1).nonzero().squeeze(1)
    if len(changed) == 0:
        return changed, changed, changed, key.new_empty(0), changed
    beats = beats.index_select(0, changed)  # (index_select: indexing with [] copies rows far slower)
    count = beats.sum(dim=1)
    m = int(count.max())
    # the candidates that can win, gathered to the front of each row (the rest: never winning)
    width = beats.shape[1]
    position = torch.where(beats, beats.cumsum(dim=1) - 1, m)  # m: a spare column for the rest
    column = torch.zeros(len(changed), m + 1, dtype=torch.long, device=key.device)
    column.scatter_(1, position, torch.arange(width, device=key.device).expand(len(changed), width))
    column = column[:, :m]
    valid = torch.arange(m, device=key.device) < count[:, None]
    cand_key = key.index_select(0, changed).gather(1, column)
    cand_rank = _ranking(cand_key, window_id.index_select(0, changed).gather(1, column)).masked_fill_(~valid, _NEVER)
    j = min(m, k)
    best, best_at = cand_rank.topk(j, dim=1)  # [c, j], falling
    lowest, lowest_slot = slot_rank.index_select(0, changed).topk(j, dim=1, largest=False)  # rising
    rows, i = (best > lowest).nonzero(as_tuple=True)
    picked = best_at[rows, i]
    return changed[rows], lowest_slot[rows, i], column[rows, picked], cand_key[rows, picked], best[rows, i]


NOT_COUNTED = len(HIST_EDGES_LOG10) - 1  # `log_bin`'s answer for a value that is not positive (or NaN)


def log_bin(values: torch.Tensor) -> torch.Tensor:
    """int32 histogram bin of each value: `bucketize(log10(v), HIST_EDGES_LOG10) - 1` clamped to
    the bins for a positive v, `NOT_COUNTED` otherwise. No logarithm and no search (a dense
    harvest bins every neuron entry, a million per batch): the top 16 bits of a float32 (sign,
    exponent, 7 mantissa bits) name a range 1/128 of an octave wide, which holds at most one bin
    edge, so a table says the bin below and above that edge, and one comparison picks."""
    edge_in_range, bin_below_above = _bin_tables(values.device)
    values = values.float().contiguous()
    high = (values.view(torch.int32) >> 16) & 0xFFFF  # [...] in [0, 65536)
    above = values >= edge_in_range.index_select(0, high.view(-1)).view(high.shape)
    return bin_below_above.index_select(0, high.mul_(2).add_(above).view(-1)).view(above.shape)


@functools.cache
def _bin_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(the bin edge inside each 16-bit range of float32 values, or +inf; [65536] float32), (the
    bin of the range's values below and at-or-above that edge; [65536 * 2] int32). An edge is the
    least float32 whose torch log10 exceeds the log edge, found by bisection, so the bins are
    exactly those of bucketize over log10."""
    inf_bits = 0x7F800000

    def least_above(log_edge: float) -> int:
        low, high = 1, inf_bits  # bit patterns of the least positive float and of +inf
        while low < high:
            mid = (low + high) // 2
            if torch.tensor([mid], dtype=torch.int32).view(torch.float32).log10().item() > log_edge:
                high = mid
            else:
                low = mid + 1
        return low

    # bin b (of NOT_COUNTED) holds the values from edge b to edge b + 1; the first and last bins are open
    edges = torch.tensor([least_above(float(e)) for e in HIST_EDGES_LOG10[1:-1]], dtype=torch.int64)
    start = torch.arange(65536, dtype=torch.int64) << 16  # each range's least bit pattern
    first_above = torch.searchsorted(edges, start, right=True)  # edges at or below the range's start
    next_edge = edges[first_above.clamp(max=len(edges) - 1)]
    inside = (first_above < len(edges)) & (next_edge <= start + 0xFFFF)
    edge = torch.where(inside, next_edge, inf_bits)
    below = first_above.clamp(max=NOT_COUNTED - 1)
    above = (first_above + inside.long()).clamp(max=NOT_COUNTED - 1)
    # +0.0 sits under the least positive float in range 0; +inf starts range 0x7F80, NaNs follow it,
    # and every negative value (sign bit set) is in the upper half
    edge[0], below[0] = 1, NOT_COUNTED
    nan = slice(0x7F80 + 1, 0x8000)
    edge[0x7F80], below[0x7F80], above[0x7F80] = inf_bits, NOT_COUNTED, NOT_COUNTED - 1
    edge[nan], below[nan], above[nan] = inf_bits, NOT_COUNTED, NOT_COUNTED
    edge[0x8000:], below[0x8000:], above[0x8000:] = inf_bits, NOT_COUNTED, NOT_COUNTED
    edge_values = edge.to(torch.int32).view(torch.float32)
    return edge_values.to(device), torch.stack([below, above], 1).reshape(-1).to(torch.int32).to(device)


# The sum of each unit's activations is kept in fixed point, as two int64 limbs counting 2^-20 and
# 2^-72: integer sums are exact, so the total is the same whatever the order of the batches and the
# shards that add them (a float64 sum differs in its last bits between one process and two).
_HIGH, _LOW = 2.0**20, 2.0**72
_LOW_PER_HIGH = 2**52


def _fixed_point(values: torch.Tensor) -> torch.Tensor:
    """float64 [U] -> [U, 2] int64 limbs. Exact to 2^-72 (each step below is exact in float64 for
    |v| < 2^33: a power-of-two scaling, a round to an integer, a subtraction within one unit)."""
    high = torch.round(values * _HIGH)
    low = torch.round((values - high / _HIGH) * _LOW)
    return _carried(torch.stack([high.long(), low.long()], dim=1))


def _carried(limbs: torch.Tensor) -> torch.Tensor:
    """The one representation of a fixed-point sum with 0 <= low limb < 2^52."""
    carry = torch.div(limbs[:, 1], _LOW_PER_HIGH, rounding_mode="floor")
    return torch.stack([limbs[:, 0] + carry, limbs[:, 1] - carry * _LOW_PER_HIGH], dim=1)


@dataclass
class UnitStatsState:
    tokens_seen: torch.Tensor  # [] int64
    active: torch.Tensor  # [U] int64
    total: torch.Tensor  # [U, 2] int64: the sum of activations in fixed point (see `_fixed_point`)
    max: torch.Tensor  # [U] float32
    hist: torch.Tensor  # [U, bins] int64

    @classmethod
    def empty(cls, units: int, device: torch.device) -> UnitStatsState:
        return cls(
            tokens_seen=torch.zeros((), dtype=torch.long, device=device),
            active=torch.zeros(units, dtype=torch.long, device=device),
            total=torch.zeros(units, 2, dtype=torch.long, device=device),
            max=torch.full((units,), -torch.inf, device=device),
            hist=torch.zeros(units, len(HIST_EDGES_LOG10) - 1, dtype=torch.long, device=device),
        )

    def update(self, acts: Activations) -> None:
        """acts: a batch of the harvested (non-separator) positions."""
        self.tokens_seen += acts.n_windows * acts.ctx
        self.total = _carried(self.total + _fixed_point(acts.column_sum()))
        self.max = torch.maximum(self.max, acts.window_max.amax(dim=1))
        counts = acts.bin_counts(log_bin, NOT_COUNTED)  # [U, bins]
        self.hist += counts
        self.active += counts.sum(dim=1)

    def totals(self) -> torch.Tensor:
        """[U] float64: each unit's sum of activations (rounded once, from the exact fixed point)."""
        return self.total[:, 0].double() / _HIGH + self.total[:, 1].double() / _LOW

    def merge(self, other: UnitStatsState) -> None:
        self.tokens_seen += other.tokens_seen
        self.active += other.active
        self.total = _carried(self.total + other.total)
        self.max = torch.maximum(self.max, other.max)
        self.hist += other.hist


@dataclass
class SplitSlots:
    top: WindowSlots
    reservoir: WindowSlots
    low: WindowSlots


@dataclass
class HarvestState:
    stats: UnitStatsState
    explain: SplitSlots
    score: SplitSlots

    @classmethod
    def empty(
        cls, units: int, ctx: int, device: torch.device, n_top: int, n_top_score: int, reservoir: int, silent: int
    ) -> HarvestState:
        def split(top: int) -> SplitSlots:
            return SplitSlots(
                WindowSlots.empty(units, top, ctx, device),
                WindowSlots.empty(units, reservoir, ctx, device),
                WindowSlots.empty(units, silent, ctx, device),
            )

        return cls(UnitStatsState.empty(units, device), split(n_top), split(n_top_score))

    def merge(self, other: HarvestState) -> None:
        self.stats.merge(other.stats)
        for name in ("explain", "score"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for f in fields(SplitSlots):
                getattr(mine, f.name).merge_slots(getattr(theirs, f.name))
