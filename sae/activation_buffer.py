"""A shuffling buffer between the activation stream and SAE training.

Activations arrive window by window, so consecutive tokens are highly correlated. The buffer
holds `capacity` token activations; each time it is full it is shuffled, the first half is handed
out as training batches and the second half stays to mix with what comes next. No activations
ever touch the disk except in a checkpoint. Document-separator (BOS) positions are dropped: their
activations are attention-sink outliers, not language.

Its whole state (the rows it holds, the part of the last block not yet taken in, how many batches
of the shuffled half are handed out, the shuffling generator and the stream position) is explicit,
so `state_dict` after any batch and `load_state_dict` in a new process continue the same sequence
of batches bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from sae.streaming import ActivationBatch


class ShufflingBuffer:
    def __init__(self, capacity: int, batch_size: int, seed: int = 0) -> None:
        if capacity < 2 * batch_size:
            raise ValueError(f"buffer capacity {capacity} must be at least twice the batch size {batch_size}")
        self.capacity = capacity
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.windows_consumed = 0  # how far into the stream the buffer has read (for resume)
        self.store: torch.Tensor | None = None
        self.spare: torch.Tensor | None = None  # the store's twin: shuffles and moves write into it
        self.filled = 0
        self.pending: torch.Tensor | None = None  # rows of the last block not yet in the store
        self.served = -1  # batches handed out from the shuffled half; -1 while filling

    @property
    def _half_batches(self) -> int:
        return (self.capacity // 2) // self.batch_size

    def batches(self, stream: Iterator[ActivationBatch], bos_id: int) -> Iterator[torch.Tensor]:
        """Training batches [batch_size, d] until the stream ends (the remainder is dropped)."""
        while True:
            while 0 <= self.served < self._half_batches:
                assert self.store is not None
                start = self.served * self.batch_size
                self.served += 1
                # a copy, so the store can be rewritten while a caller still holds its batch
                yield self.store[start : start + self.batch_size].clone()
            if self.served >= 0:
                self._keep_second_half()
            if self.pending is None or len(self.pending) == 0:
                item = next(stream, None)
                if item is None:
                    return
                acts = item.activations.reshape(-1, item.activations.shape[-1])
                self.pending = acts[item.tokens.reshape(-1) != bos_id]
                self.windows_consumed = item.first_window + item.tokens.shape[0]
            self._take_pending()

    def _take_pending(self) -> None:
        """Move pending rows into the store; shuffle and start serving when it is full."""
        assert self.pending is not None
        if self.store is None:
            self.store = torch.empty(
                self.capacity, self.pending.shape[1], dtype=self.pending.dtype, device=self.pending.device
            )
        take = min(len(self.pending), self.capacity - self.filled)
        self.store[self.filled : self.filled + take] = self.pending[:take]
        self.filled += take
        self.pending = self.pending[take:]
        if self.filled == self.capacity:
            order = torch.randperm(self.capacity, generator=self.generator).to(self.store.device)
            spare = self._spare()
            torch.index_select(self.store, 0, order, out=spare)
            self.store, self.spare = spare, self.store
            self.served = 0

    def _keep_second_half(self) -> None:
        """The kept half moves to the front of the spare, which becomes the store: two tensors of
        `capacity` rows are all the buffer ever holds."""
        assert self.store is not None
        half = self.capacity // 2
        spare = self._spare()
        spare[: self.capacity - half] = self.store[half:]
        self.store, self.spare = spare, self.store
        self.filled, self.served = self.capacity - half, -1

    def _spare(self) -> torch.Tensor:
        assert self.store is not None
        if self.spare is None:
            self.spare = torch.empty_like(self.store)
        return self.spare

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: rows already handed out are left out."""
        first = max(0, self.served) * self.batch_size
        return {
            "rows": None if self.store is None else self.store[first : self.filled].clone(),
            "first_row": first,
            "filled": self.filled,
            "served": self.served,
            "pending": None if self.pending is None else self.pending.clone(),
            "generator": self.generator.get_state(),
            "windows_consumed": self.windows_consumed,
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        """Continue from `state_dict()`'s output (loaded on the CPU), holding the rows on `device`."""
        rows, pending = state["rows"], state["pending"]
        self.filled, self.served = state["filled"], state["served"]
        self.pending = None if pending is None else pending.to(device)
        self.windows_consumed = state["windows_consumed"]
        self.generator.set_state(state["generator"])
        self.store = self.spare = None
        if rows is not None:
            self.store = torch.empty(self.capacity, rows.shape[1], dtype=rows.dtype, device=device)
            self.store[state["first_row"] : self.filled] = rows.to(device)
