"""Combining the harvests of several processes, each of which read its own batches of the stream.

The harvest state is mergeable (top-k lists and reservoirs keep the largest keys, counts and
histograms add), so rank 0 ends with the state one process reading every batch would have: the
states travel up a binary tree of point-to-point sends and are merged with `KindHarvester.merge`.
Between the two passes every process needs the merged triggers and maxima, which rank 0 broadcasts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch.distributed as dist

from sae.distributed import Shard, broadcast, tree_partners
from sae.records import UnitKind

if TYPE_CHECKING:
    from sae.harvest import KindHarvester

# units -> an empty harvester of that many units
NewHarvester = Callable[[int], "KindHarvester"]


def agree_on_kinds(kinds: dict[UnitKind, KindHarvester], new: NewHarvester, shard: Shard) -> None:
    """Give every process the same kinds (a process that read no batch has none yet), in place."""
    if shard.world == 1:
        return
    widths: dict[UnitKind, int] = {kind: h.state.stats.active.shape[0] for kind, h in kinds.items()}
    everyone: list[dict[UnitKind, int]] = [{} for _ in range(shard.world)]
    dist.all_gather_object(everyone, widths)
    for seen in everyone:
        for kind, units in sorted(seen.items()):
            if kind not in kinds:
                kinds[kind] = new(units)


def merge_into_first(kinds: dict[UnitKind, KindHarvester], new: NewHarvester, shard: Shard) -> None:
    """Merge every process's harvesters into rank 0's (the others' are left partly merged)."""
    agree_on_kinds(kinds, new, shard)
    for kind in sorted(kinds):
        mine = kinds[kind]
        for action, peer in tree_partners(shard):
            if action == "send":
                for t in mine.tensors():
                    dist.send(t.contiguous(), peer)
            else:
                theirs = new(mine.state.stats.active.shape[0])
                for t in theirs.tensors():
                    dist.recv(t, peer)
                mine.merge(theirs)


def share_first_pass(kinds: dict[UnitKind, KindHarvester], new: NewHarvester, shard: Shard) -> None:
    """After the first pass is merged on rank 0: the other processes start the hard-negative pass
    from empty harvesters holding rank 0's triggers and maxima (all the pass reads), so the final
    merge adds only their hard negatives to rank 0's state."""
    if shard.world == 1:
        return
    for kind in sorted(kinds):
        if not shard.is_writer:
            kinds[kind] = new(kinds[kind].state.stats.active.shape[0])
        h = kinds[kind]
        broadcast([h.triggers, h.state.stats.max], shard)
