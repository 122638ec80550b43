"""Where the harvest's bookkeeping runs: a stretch of tiny tensor operations on one thread, either
in the caller or on a worker thread that overlaps it with the model's next batch."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Self

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


def _worker_setup() -> None:
    torch.set_num_threads(1)  # OpenMP's thread count is the calling thread's: the model keeps its own


class Bookkeeper:
    """Runs jobs in submission order, one at a time, on one torch thread.

    In the background (`background=True`), a job runs on a worker thread while the caller goes on
    to compute the next batch; `run` first waits for the job before, so at most one batch waits
    and the jobs see the state in the order the batches came. The state is only safe to read
    after `wait`. In the foreground, each job runs at once in the caller. The result is the same
    either way: the same operations, in the same order, each on one thread."""

    def __init__(self, background: bool) -> None:
        self._pool = ThreadPoolExecutor(1, "harvest-books", initializer=_worker_setup) if background else None
        self._pending: Future[None] | None = None

    def run(self, job: Callable[..., None], *args: Any) -> None:
        self.wait()
        if self._pool is None:
            with one_torch_thread(), torch.no_grad():
                job(*args)
        else:
            self._pending = self._pool.submit(_without_grad, job, *args)

    def wait(self) -> None:
        """Block until the last job is done; a job's exception is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)


def _without_grad(job: Callable[..., None], *args: Any) -> None:
    with torch.no_grad():  # grad mode is per thread: the worker's starts enabled
        job(*args)
