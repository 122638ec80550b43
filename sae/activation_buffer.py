"""A shuffling buffer between the activation stream and SAE training.

Activations arrive window by window, so consecutive tokens are highly correlated. The buffer
holds `capacity` token activations; each time it is full it is shuffled, the first half is handed
out as training batches and the second half stays to mix with what comes next. No activations
ever touch the disk. Document-separator (BOS) positions are dropped: their activations are
attention-sink outliers, not language.
"""

from __future__ import annotations

from collections.abc import Iterator

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

    def batches(self, stream: Iterator[ActivationBatch], bos_id: int) -> Iterator[torch.Tensor]:
        """Training batches [batch_size, d] until the stream ends (the remainder is dropped)."""
        store: torch.Tensor | None = None
        filled = 0
        for item in stream:
            acts = item.activations.reshape(-1, item.activations.shape[-1])
            acts = acts[item.tokens.reshape(-1) != bos_id]
            self.windows_consumed = item.first_window + item.tokens.shape[0]
            if store is None:
                store = torch.empty(self.capacity, acts.shape[1], dtype=acts.dtype, device=acts.device)
            while len(acts):  # one block may fill the buffer more than once
                take = min(len(acts), self.capacity - filled)
                store[filled : filled + take] = acts[:take]
                filled += take
                acts = acts[take:]
                if filled < self.capacity:
                    break
                order = torch.randperm(self.capacity, generator=self.generator).to(store.device)
                store = store[order]
                half = self.capacity // 2
                for start in range(0, half - self.batch_size + 1, self.batch_size):
                    yield store[start : start + self.batch_size]
                # a new tensor for the kept half, so batches already handed out are never overwritten
                kept = torch.empty_like(store)
                kept[: self.capacity - half] = store[half:]
                store, filled = kept, self.capacity - half
