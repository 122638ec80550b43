"""Hand freed heap memory back to the operating system between the stages of a long run.

glibc keeps the pages a process has freed for its own later use, so after a large stage (a harvest
holds hundreds of MB of state) the resident size stays at its high-water mark, and the next stage's
peak lands on top of it. `malloc_trim(0)` returns every whole free page; it costs milliseconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None  # glibc only


def release_freed_memory() -> bool:
    """Collect garbage and give the freed heap pages back; False where the C library cannot."""
    gc.collect()
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
