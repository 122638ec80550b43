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
    rank: torch.Tensor  # [U, K] int64: `_ranking(key, window_id)`, kept rather than recomputed each merge
    tokens: torch.Tensor  # [U, K, ctx] int32
    acts: torch.Tensor  # [U, K, ctx] float32

    @classmethod
    def empty(cls, units: int, k: int, ctx: int, device: torch.device) -> WindowSlots:
        key = torch.full((units, k), -torch.inf, device=device)
        window_id = torch.full((units, k), -1, dtype=torch.long, device=device)
        return cls(
            key=key,
            window_id=window_id,
            rank=_ranking(key, window_id),
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
        changed, evicted_slots, cand, new_key, new_rank = _winners(self.key, self.rank, key, window_id)
        if len(changed) == 0:
            return
        units = changed
        self.key[units, evicted_slots] = new_key
        self.rank[units, evicted_slots] = new_rank
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
        _, evicted_slots, cand, new_key, new_rank = _winners(self.key[:1], self.rank[:1], key[None], window_id[None])
        if len(cand) == 0:
            return
        self.key[:, evicted_slots] = new_key
        self.rank[:, evicted_slots] = new_rank
        self.window_id[:, evicted_slots] = window_id[cand].masked_fill(new_key == -torch.inf, -1)
        tokens, acts = fetch(cand)  # [m, ctx], [U, m, ctx]
        self.tokens.index_copy_(1, evicted_slots, tokens.to(self.tokens.dtype).expand(len(self.tokens), -1, -1))
        self.acts.index_copy_(1, evicted_slots, acts.to(self.acts.dtype))

    def merge_slots(self, other: WindowSlots) -> None:
        """Fold another shard's slots in (for sharded harvests)."""
        self.merge(other.key, other.window_id, lambda u, c: (other.tokens[u, c], other.acts[u, c]))


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
    # a candidate below its unit's lowest slot cannot win; one tied with it wins on a lower window id
    beats = (key > floor) | ((key == floor) & (key > -torch.inf))
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


def log_bin(values: torch.Tensor) -> torch.Tensor:
    """The histogram bin of each positive value: `bucketize(log10(v), HIST_EDGES_LOG10) - 1`,
    clamped to the bins, without bucketize's binary search (the slowest step of a dense harvest). The
    bin follows from arithmetic to within one, and one comparison with each neighbouring edge
    settles it exactly."""
    edges = HIST_EDGES_LOG10.to(values.device)
    n_bins = len(edges) - 1
    log = values.log10()
    step = float(edges[1] - edges[0])
    guess = ((log - float(edges[0])) / step).clamp_(0, n_bins - 1).long()  # clamped before the cast: inf stays in range
    # bucketize's bin b holds edges[b] < log <= edges[b + 1]
    low = (log <= edges.take(guess)).long()
    high = (log > edges.take(guess + 1)).long()
    return (guess - low + high).clamp_(0, n_bins - 1)


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
        n_bins = self.hist.shape[1]
        counts = torch.bincount(unit * n_bins + log_bin(values), minlength=self.hist.numel())
        self.hist += counts.view(self.hist.shape)
        self.active += counts.view(self.hist.shape).sum(dim=1)

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
