"""Running the harvest and SAE training as several processes under `torchrun` (or any launcher that
sets RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT): which process this is, which batches of the
shared window stream it reads, and the few collectives that combine the processes' work.

The stream is cut by batch: process `rank` reads batches rank, rank + world, ... of the same
sequence of windows, so window ids, batch boundaries and the content split are those of a
single-process run. Every process still tokenises the whole stream (cheap next to the model), and
runs the model only on its own batches.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from sae.errors import UserError

log = logging.getLogger("sae.distributed")
T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """This process's part of a run split over `world` processes."""

    rank: int = 0
    world: int = 1

    def owns(self, batch_index: int) -> bool:
        return batch_index % self.world == self.rank

    @property
    def is_writer(self) -> bool:
        """Only the first process writes outputs (catalog, SAE, checkpoints shared by all)."""
        return self.rank == 0


SINGLE = Shard()


def launched_shard() -> Shard:
    """The shard the launcher's environment names (one process when it names none)."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise UserError("RANK and WORLD_SIZE must be integers (they are set by torchrun)") from None
    if not 0 <= rank < world:
        raise UserError(f"RANK {rank} is outside WORLD_SIZE {world}")
    return Shard(rank, world)


def join(device: str) -> tuple[Shard, str]:
    """Join the process group when launched as several processes (gloo on CPU, NCCL on CUDA) and
    return this process's shard and device: under torchrun, `cuda` means this node's GPU
    LOCAL_RANK."""
    shard = launched_shard()
    if shard.world == 1:
        return shard, device
    if device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu")
        torch.cuda.set_device(torch.device(device))
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise UserError("WORLD_SIZE > 1 but MASTER_ADDR is not set: start the processes with torchrun")
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    log.info("process %d of %d on %s", shard.rank, shard.world, device)
    return shard, device


@contextlib.contextmanager
def process_group(device: str) -> Iterator[tuple[Shard, str]]:
    """`join` for the length of a command, closing the group after (a no-op in one process)."""
    shard, device = join(device)
    try:
        yield shard, device
    finally:
        if shard.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def all_sum(t: torch.Tensor, shard: Shard) -> torch.Tensor:
    """The element-wise sum over all processes (a new tensor; `t` itself is left alone)."""
    if shard.world == 1:
        return t
    out = t.clone()
    dist.all_reduce(out)
    return out


def count_all(n: int, shard: Shard, device: torch.device) -> int:
    """The sum of a count over all processes (no device round trip in one process)."""
    return n if shard.world == 1 else int(all_sum(torch.tensor(n, device=device), shard))


def all_rows(t: torch.Tensor, shard: Shard) -> torch.Tensor:
    """Every process's rows, concatenated in rank order (all hold the same number of rows)."""
    if shard.world == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(shard.world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def broadcast(tensors: list[torch.Tensor], shard: Shard) -> None:
    """Overwrite each tensor with the first process's (in place)."""
    if shard.world > 1:
        with torch.no_grad():  # parameters too: a copy, not a step autograd should see
            for t in tensors:
                dist.broadcast(t, 0)


def tree_partners(shard: Shard) -> list[tuple[str, int]]:
    """A binary-tree reduction to rank 0 in ceil(log2 world) rounds, as this process's part:
    ("recv", peer) to receive and merge a peer's state, then ("send", peer) once, after which
    the process holds nothing the result needs."""
    steps: list[tuple[str, int]] = []
    stride = 1
    while stride < shard.world:
        if shard.rank % (2 * stride) == stride:
            steps.append(("send", shard.rank - stride))
            break
        if shard.rank % (2 * stride) == 0 and shard.rank + stride < shard.world:
            steps.append(("recv", shard.rank + stride))
        stride *= 2
    return steps


def first_decides(decide: Callable[[], T], shard: Shard) -> T:
    """Rank 0's answer, on every process; a UserError there is raised on every process (so none
    waits forever for a peer that stopped)."""
    if shard.world == 1:
        return decide()
    message: list[Any] = [None, None]
    if shard.is_writer:
        try:
            message[0] = decide()
        except UserError as err:
            message[1] = str(err)
    dist.broadcast_object_list(message, 0)
    if message[1] is not None:
        raise UserError(message[1] if shard.is_writer else f"process 0 stopped: {message[1]}")
    return message[0]
