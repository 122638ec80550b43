"""Explain and score units in several processes when the explainer and simulator run locally.

The offline explainer and simulator are pure Python on the CPU: an event loop cannot overlap them,
so on an n-core machine only separate processes make the stage n times faster. Each worker opens
its own read connection to the catalog, takes a chunk of unit keys, and returns the finished
records; the parent alone writes them, chunk by chunk, so a killed run loses only the chunks in
flight and a re-run redoes exactly those. Results do not depend on the number of processes: every
record is computed from its own unit alone.

Workers are forked where the platform allows (no re-import of the package, whose LLM SDKs take
seconds to load) and spawned elsewhere.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from pydantic import BaseModel
from tqdm import tqdm

from autointerp.errors import UserError
from autointerp.records import Explanation, Score, UnitHarvest, UnitKind
from autointerp.store import CatalogStore

UnitKey = tuple[UnitKind, int]
Item = TypeVar("Item")
CHUNK = 16  # units per task: large enough to amortise the hand-off, small enough to lose little on a kill

_stores: dict[str, CatalogStore] = {}  # one connection per worker process and catalog (it only reads)


def default_processes() -> int:
    """One worker per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def runs_locally(component: object) -> bool:
    """Whether an explainer or simulator computes in this process (no network), so it may be
    moved into worker processes. Components say so with a class attribute `local = True`."""
    return bool(getattr(component, "local", False))


def _store(path: str) -> CatalogStore:
    if path not in _stores:
        _stores[path] = CatalogStore(path)
    return _stores[path]


def explain_chunk(path: str, source: str, explainer: Any, keys: list[UnitKey]) -> list[Explanation]:
    """Worker: explanations of the units in `keys`."""
    store = _store(path)
    return [explainer.explain_now(load_unit(store, source, key)) for key in keys]


def score_chunk(
    path: str,
    source: str,
    simulator: Any,
    scorers: dict[str, Callable[..., Any]],
    configs: dict[str, BaseModel],
    items: list[tuple[UnitKey, list[str], Explanation]],
) -> list[list[Score]]:
    """Worker: every asked score of each unit in `items` (key, scorer names, explanation), per unit."""
    store = _store(path)

    async def run() -> list[list[Score]]:
        per_unit = []
        for key, names, explanation in items:
            harvest = load_unit(store, source, key)
            per_unit.append([await scorers[name](harvest, explanation, simulator, configs[name]) for name in names])
        return per_unit

    return asyncio.run(run())


def load_unit(store: CatalogStore, source: str, key: UnitKey) -> UnitHarvest:
    """A unit to label; one deleted since it was listed is a user error, not a crash."""
    harvest = store.get_unit(source, key[0], key[1])
    if harvest is None:
        raise UserError(f"unit {key[0]}:{key[1]} of source {source!r} disappeared from the store")
    return harvest


def in_processes(
    work: Callable[..., list[Any]],
    shared: Sequence[Any],
    items: Sequence[Item],
    *,
    processes: int,
    label: str,
    progress: bool,
) -> Iterator[list[Any]]:
    """`work(*shared, chunk)` over chunks of `items` in `processes` workers; yields each chunk's
    results as it finishes. On an error or interrupt, waits for no new chunk and re-raises."""
    chunks = [list(items[i : i + CHUNK]) for i in range(0, len(items), CHUNK)]
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    bar = tqdm(total=len(items), desc=label, unit="unit", disable=not progress or not items)
    pool = ProcessPoolExecutor(max_workers=min(processes, max(1, len(chunks))), mp_context=context)
    try:
        pending: set[Future[list[Any]]] = {pool.submit(work, *shared, chunk) for chunk in chunks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                results = future.result()
                bar.update(len(results))
                yield results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
