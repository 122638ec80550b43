"""Freed heap memory goes back to the OS between stages (glibc keeps it otherwise)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sae.memory import release_freed_memory


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return int(status.read().split("VmRSS:")[1].split()[0]) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and glibc's malloc_trim")
def test_memory_freed_in_the_middle_of_the_heap_is_given_back() -> None:
    blocks = [np.ones(16_000) for _ in range(2_000)]  # 128 KB each: heap, not mmap, after the first frees
    kept = blocks[-1]  # the top of the heap stays in use, so free() alone cannot shrink it
    del blocks
    before = _rss_mb()
    assert release_freed_memory()
    after = _rss_mb()
    assert kept.sum() == 16_000
    assert before - after > 100, (before, after)
