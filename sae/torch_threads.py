"""Running a stretch of tiny tensor operations on one thread, then giving the pool back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Handing each tiny operation to a thread pool costs more than the operation (and far more
    when another process holds the other cores); the caller's thread count is restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
