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

from dataclasses import dataclass, fields

import torch

HIST_EDGES_LOG10 = torch.linspace(-4, 3, 71)  # 0.1 decade bins from 1e-4 to 1e3


@dataclass
class WindowSlots:
    """K kept windows per unit, chosen by `key` (largest first)."""

    key: torch.Tensor  # [U, K] float; -inf marks an empty slot
    window_id: torch.Tensor  # [U, K] int64
    tokens: torch.Tensor  # [U, K, ctx] int32
    acts: torch.Tensor  # [U, K, ctx] float32

    @classmethod
    def empty(cls, units: int, k: int, ctx: int, device: torch.device) -> "WindowSlots":
        return cls(
            key=torch.full((units, k), -torch.inf, device=device),
            window_id=torch.full((units, k), -1, dtype=torch.long, device=device),
            tokens=torch.zeros(units, k, ctx, dtype=torch.int32, device=device),
            acts=torch.zeros(units, k, ctx, device=device),
        )

    def merge(self, key: torch.Tensor, window_id: torch.Tensor, tokens: torch.Tensor, acts: torch.Tensor) -> None:
        """Keep the K largest keys among the current slots and W candidates per unit.

        key [U, W] (-inf: not a candidate), window_id [U, W], tokens [U, W, ctx], acts [U, W, ctx];
        candidates shared by all units can be passed as expanded views.
        """
        k = self.key.shape[1]
        if k == 0:
            return
        # Only units with a candidate better than their current worst slot change; after the first
        # batches that is a small minority, so the rest of the state is never copied.
        changed = (key > self.key.min(dim=1, keepdim=True).values).any(dim=1).nonzero().squeeze(1)
        if len(changed) == 0:
            return
        if len(changed) == self.key.shape[0]:
            changed = None  # every unit: skip the gathers
        sub = (lambda t: t) if changed is None else (lambda t: t.index_select(0, changed))
        old_key, old_ids, old_toks, old_acts = sub(self.key), sub(self.window_id), sub(self.tokens), sub(self.acts)
        best, pick = torch.cat([old_key, sub(key)], dim=1).topk(k, dim=1)  # [u, K] into old ++ new
        from_old = pick < k
        old_pick, new_pick = pick.clamp(max=k - 1), (pick - k).clamp(min=0)
        ctx = self.tokens.shape[2]

        def choose(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
            if old.dim() == 2:
                return torch.where(from_old, old.gather(1, old_pick), new.gather(1, new_pick))
            old_idx, new_idx = old_pick[..., None].expand(-1, -1, ctx), new_pick[..., None].expand(-1, -1, ctx)
            return torch.where(from_old[..., None], old.gather(1, old_idx), new.gather(1, new_idx).to(old.dtype))

        # fewer than K real candidates: topk also returns -inf ones, whose windows must stay empty slots
        ids = choose(old_ids, sub(window_id)).masked_fill(best == -torch.inf, -1)
        merged = (best, ids, choose(old_toks, sub(tokens)), choose(old_acts, sub(acts)))
        if changed is None:
            self.key, self.window_id, self.tokens, self.acts = merged
            return
        for target, value in zip((self.key, self.window_id, self.tokens, self.acts), merged):
            target.index_copy_(0, changed, value)

    def merge_slots(self, other: "WindowSlots") -> None:
        """Fold another shard's slots in (for sharded harvests)."""
        self.merge(other.key, other.window_id, other.tokens, other.acts)


@dataclass
class UnitStatsState:
    tokens_seen: torch.Tensor  # [] int64
    active: torch.Tensor  # [U] int64
    total: torch.Tensor  # [U] float64
    max: torch.Tensor  # [U] float32
    hist: torch.Tensor  # [U, bins] int64

    @classmethod
    def empty(cls, units: int, device: torch.device) -> "UnitStatsState":
        return cls(
            tokens_seen=torch.zeros((), dtype=torch.long, device=device),
            active=torch.zeros(units, dtype=torch.long, device=device),
            total=torch.zeros(units, dtype=torch.float64, device=device),
            max=torch.full((units,), -torch.inf, device=device),
            hist=torch.zeros(units, len(HIST_EDGES_LOG10) - 1, dtype=torch.long, device=device),
        )

    def update(self, flat: torch.Tensor) -> None:
        """flat: [tokens, U] activations of the harvested (non-separator) positions."""
        self.tokens_seen += flat.shape[0]
        self.active += (flat > 0).sum(0)
        self.total += flat.sum(0, dtype=torch.float64)
        self.max = torch.maximum(self.max, flat.max(0).values)
        tok, unit = (flat > 0).nonzero(as_tuple=True)
        edges = HIST_EDGES_LOG10.to(flat.device)
        bins = (torch.bucketize(flat[tok, unit].log10(), edges) - 1).clamp(0, len(edges) - 2)
        self.hist.view(-1).index_add_(
            0, unit * self.hist.shape[1] + bins, torch.ones_like(bins, dtype=torch.long)
        )

    def merge(self, other: "UnitStatsState") -> None:
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
    ) -> "HarvestState":
        def split(top: int) -> SplitSlots:
            return SplitSlots(
                WindowSlots.empty(units, top, ctx, device),
                WindowSlots.empty(units, reservoir, ctx, device),
                WindowSlots.empty(units, silent, ctx, device),
            )

        return cls(UnitStatsState.empty(units, device), split(n_top), split(n_top_score))

    def merge(self, other: "HarvestState") -> None:
        self.stats.merge(other.stats)
        for name in ("explain", "score"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for f in fields(SplitSlots):
                getattr(mine, f.name).merge_slots(getattr(theirs, f.name))
