"""The harvest's bookkeeper: jobs in order, one torch thread, errors surface in the caller."""

from __future__ import annotations

import threading

import pytest
import torch

from sae.torch_threads import Bookkeeper


@pytest.mark.parametrize("background", [False, True])
def test_jobs_run_in_order_on_one_torch_thread_without_grad(background: bool) -> None:
    seen: list[tuple[int, int, bool, bool]] = []

    def job(i: int) -> None:
        in_caller = threading.current_thread() is threading.main_thread()
        seen.append((i, torch.get_num_threads(), torch.is_grad_enabled(), in_caller))

    with Bookkeeper(background) as books:
        for i in range(5):
            books.run(job, i)
    assert [s[0] for s in seen] == list(range(5))
    assert all(threads == 1 and not grad for _, threads, grad, _ in seen)
    assert all(in_caller != background for *_, in_caller in seen)


def test_a_background_error_reaches_the_caller() -> None:
    def fails() -> None:
        raise ValueError("bookkeeping broke")

    with pytest.raises(ValueError, match="bookkeeping broke"), Bookkeeper(background=True) as books:
        books.run(fails)
        books.wait()


def test_the_callers_thread_count_is_kept() -> None:
    before = torch.get_num_threads()
    with Bookkeeper(background=False) as books:
        books.run(lambda: None)
    assert torch.get_num_threads() == before
