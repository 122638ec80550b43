"""The running, mergeable state of a harvest for one set of units (neurons or features).

Per unit it keeps, on the model's device and at a size fixed up front:
    stats      token count, active count, sum, max, log10 histogram of positive activations
    top        the `n_top` windows with the largest max activation, per split
    reservoir  a uniform sample of `reservoir` windows where the unit fires, per split (bottom-k of
               a random priority, so two shards' samples merge into a uniform sample of the union);
               quantile-stratified examples are drawn from it at the end
    low        the windows where the unit is least active, per split: a uniform sample of the
               windows where it never fires when there are enough, else the lowest by max
Each kept window stores its tokens and the unit's activation at every position. Nothing grows with
the number of tokens seen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from sae.unit_acts import Activations

HIST_EDGES_LOG10 = torch.linspace(-4, 3, 71)  # 0.1 decade bins from 1e-4 to 1e3


# fetch(units [n], candidates [n]) -> (tokens [n, ctx], acts [n, ctx]) of the chosen candidates
Fetch = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
# fetch(windows [m]) -> (tokens [m, ctx], every unit's acts [U, m, ctx]) of the chosen windows
FetchWindows = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class WindowSlots:
    """K kept windows per unit, those with the largest `key` (slots are in no particular order)."""

    key: torch.Tensor  # [U, K] float; -inf marks an empty slot
    window_id: torch.Tensor  # [U, K] int64; -1 in empty slots
    tokens: torch.Tensor  # [U, K, ctx] int32
    acts: torch.Tensor  # [U, K, ctx] float32

    @classmethod
    def empty(cls, units: int, k: int, ctx: int, device: torch.device) -> WindowSlots:
        return cls(
            key=torch.full((units, k), -torch.inf, device=device),
            window_id=torch.full((units, k), -1, dtype=torch.long, device=device),
            tokens=torch.zeros(units, k, ctx, dtype=torch.int32, device=device),
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
        changed, evicted_slots, cand, new_key = _winners(self.key, self.window_id, key, window_id)
        if len(changed) == 0:
            return
        units = changed
        self.key[units, evicted_slots] = new_key
        # a -inf candidate can win only an empty slot, which stays empty
        self.window_id[units, evicted_slots] = window_id[units, cand].masked_fill(new_key == -torch.inf, -1)
        tokens, acts = fetch(units, cand)
        flat = units * self.key.shape[1] + evicted_slots  # one row per winner: a row copy each
        self.tokens.view(-1, self.tokens.shape[2]).index_copy_(0, flat, tokens.to(self.tokens.dtype))
        self.acts.view(-1, self.acts.shape[2]).index_copy_(0, flat, acts.to(self.acts.dtype))

    def merge_shared(self, key: torch.Tensor, window_id: torch.Tensor, fetch: FetchWindows) -> None:
        """`merge` for candidates that every unit ranks alike (key [W], window_id [W]), into slots
        that hold the same windows for every unit (as such merges leave them): decided once, on
        the first unit, and written for all units at once. The state is the one `merge` leaves."""
        if self.key.shape[1] == 0:
            return
        _, evicted_slots, cand, new_key = _winners(self.key[:1], self.window_id[:1], key[None], window_id[None])
        if len(cand) == 0:
            return
        self.key[:, evicted_slots] = new_key
        self.window_id[:, evicted_slots] = window_id[cand].masked_fill(new_key == -torch.inf, -1)
        tokens, acts = fetch(cand)  # [m, ctx], [U, m, ctx]
        self.tokens[:, evicted_slots] = tokens.to(self.tokens.dtype)
        self.acts[:, evicted_slots] = acts.to(self.acts.dtype)

    def merge_slots(self, other: WindowSlots) -> None:
        """Fold another shard's slots in (for sharded harvests)."""
        self.merge(other.key, other.window_id, lambda u, c: (other.tokens[u, c], other.acts[u, c]))


def _ranking(key: torch.Tensor, window_id: torch.Tensor) -> torch.Tensor:
    """int64 that orders by key, then by lower window id: a total order, so the windows kept do not
    depend on the order they arrived in (one pass, or shards merged in any order). The float32 key's
    bits are made order-preserving as a signed int and fill the high half."""
    bits = key.float().contiguous().view(torch.int32)
    ordered = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).long()
    return (ordered << 32) + (2**31 - 1 - window_id)


def _winners(
    slot_key: torch.Tensor, slot_window: torch.Tensor, key: torch.Tensor, window_id: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(unit, the slot it evicts, the candidate that takes it, its key) for every winning candidate
    of `key` [U, W] against slots of K keys per unit; a unit's winners in rank order, each into
    the next slot (in slot order) that unit evicts."""
    k = slot_key.shape[1]
    floor = slot_key.min(dim=1, keepdim=True).values
    # a candidate below its unit's lowest slot cannot win; one tied with it wins on a lower window id
    beats = (key > floor) | ((key == floor) & (key > -torch.inf))
    changed = beats.any(dim=1).nonzero().squeeze(1)
    if len(changed) == 0:
        return changed, changed, changed, key.new_empty(0)
    beats = beats[changed]
    count = beats.sum(dim=1)
    m = int(count.max())
    # the candidates that can win, gathered to the front of each row (the rest: -inf, never winning)
    width = beats.shape[1]
    position = torch.where(beats, beats.cumsum(dim=1) - 1, m)  # m: a spare column for the rest
    column = torch.zeros(len(changed), m + 1, dtype=torch.long, device=key.device)
    column.scatter_(1, position, torch.arange(width, device=key.device).expand(len(changed), width))
    column = column[:, :m]
    valid = torch.arange(m, device=key.device) < count[:, None]
    cand_key = torch.where(valid, key[changed].gather(1, column), -torch.inf)
    cand_window = window_id[changed].gather(1, column)
    ranks = _ranking(
        torch.cat([slot_key[changed], cand_key], dim=1), torch.cat([slot_window[changed], cand_window], dim=1)
    )
    _, pick = ranks.topk(k, dim=1)  # [c, K] into old ++ new
    is_old = pick < k
    kept = torch.zeros(len(changed), k, dtype=torch.int32, device=key.device)
    kept.scatter_add_(1, torch.where(is_old, pick, 0), is_old.to(torch.int32))
    # Per unit, evicted slots and winning candidates are equally many; nonzero() lists both in
    # row-major order, so the i-th winner goes into the i-th evicted slot.
    _, evicted_slots = (kept == 0).nonzero(as_tuple=True)
    new_rows, new_pos = (~is_old).nonzero(as_tuple=True)
    picked = pick[new_rows, new_pos] - k
    return changed[new_rows], evicted_slots, column[new_rows, picked], cand_key[new_rows, picked]


@dataclass
class UnitStatsState:
    tokens_seen: torch.Tensor  # [] int64
    active: torch.Tensor  # [U] int64
    total: torch.Tensor  # [U] float64
    max: torch.Tensor  # [U] float32
    hist: torch.Tensor  # [U, bins] int64

    @classmethod
    def empty(cls, units: int, device: torch.device) -> UnitStatsState:
        return cls(
            tokens_seen=torch.zeros((), dtype=torch.long, device=device),
            active=torch.zeros(units, dtype=torch.long, device=device),
            total=torch.zeros(units, dtype=torch.float64, device=device),
            max=torch.full((units,), -torch.inf, device=device),
            hist=torch.zeros(units, len(HIST_EDGES_LOG10) - 1, dtype=torch.long, device=device),
        )

    def update(self, acts: Activations) -> None:
        """acts: a batch of the harvested (non-separator) positions. Positive activations are looked
        for only where a unit fires (few, for sparse units)."""
        self.tokens_seen += acts.n_windows * acts.ctx
        self.total += acts.column_sum()  # float64
        self.max = torch.maximum(self.max, acts.window_max.amax(dim=1))
        unit, values = acts.positive()
        self.active += torch.bincount(unit, minlength=self.active.shape[0])
        edges = HIST_EDGES_LOG10.to(values.device)
        bins = (torch.bucketize(values.log10(), edges) - 1).clamp(0, len(edges) - 2)
        self.hist.view(-1).index_add_(0, unit * self.hist.shape[1] + bins, torch.ones_like(bins, dtype=torch.long))

    def merge(self, other: UnitStatsState) -> None:
        self.tokens_seen += other.tokens_seen
        self.active += other.active
        self.total += other.total
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
