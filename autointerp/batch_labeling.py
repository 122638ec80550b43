"""`explain --batch` and `score --batch`: the stages run in rounds over the providers' batch APIs.

Each round first waits for this model's open batches (a killed run's too: the ledger keeps their ids)
and files their answers; then walks the units still to do with a BatchedClient. A unit whose requests
are all answered is written by the live stage's own code (labeling.explain_unit / score_unit), so its
records and settings hash are the live path's; a unit with an unanswered request waits, and those
requests go out together as the round's new batch. Requests of one unit that do not depend on each
other (simulation's one request per excerpt, detection's and fuzzing's groups) share a round; a
request that can only be written after an answer (the re-ask after an unreadable reply) goes in a
later one. Rounds end when every unit is written.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from autointerp.errors import UserError
from autointerp.explainers import Explainer
from autointerp.labeling import StageReport, UnitKey, explain_todo, explain_unit, score_unit, score_work
from autointerp.llm.batched_client import AwaitingBatch, BatchedClient
from autointerp.llm.client import BaseLLMClient
from autointerp.scoring import ScorerName
from autointerp.simulators.base import Simulator
from autointerp.store import CatalogStore

T = TypeVar("T")


class BatchSettings(BaseModel):
    """How a batch run waits: the CLI's --poll-interval and --max-wait."""

    model_config = ConfigDict(extra="forbid")

    poll_interval: float = Field(60.0, gt=0)  # seconds between status checks of a running batch
    max_wait: float | None = Field(None, gt=0)  # stop waiting after this many seconds (None: until done)


def explain_in_batches(
    store: CatalogStore, source: str, units: Iterable[UnitKey], explainer: Explainer, settings: BatchSettings
) -> StageReport:
    """The explain stage of labeling.explain_units, its LLM requests sent as provider batches."""
    client = _batched(explainer, "explainer")
    report, todo = explain_todo(store, source, units, explainer)

    async def explain(key: UnitKey) -> None:
        await explain_unit(store, source, key, explainer, report)

    asyncio.run(_rounds(todo, explain, client, settings))
    return report


def score_in_batches(
    store: CatalogStore,
    source: str,
    units: Iterable[UnitKey],
    *,
    explanation_settings_hash: str,
    scorers: Sequence[ScorerName],
    simulator: Simulator,
    settings: BatchSettings,
) -> StageReport:
    """The score stage of labeling.score_units, its LLM requests sent as provider batches."""
    client = _batched(simulator, "simulator")
    work = score_work(
        store,
        source,
        units,
        explanation_settings_hash=explanation_settings_hash,
        scorers=scorers,
        simulator=simulator,
    )

    async def score(item: tuple[UnitKey, list[ScorerName]]) -> None:
        await score_unit(work, *item)

    asyncio.run(_rounds(work.todo, score, client, settings))
    return work.report


def _batched(user: Explainer | Simulator, role: str) -> BatchedClient:
    """Give the explainer or simulator a BatchedClient over its own LLM client (same name, so the
    same settings hash). A request is sent in at most --max-attempts batches, as it would be tried
    at most that often live."""
    client = getattr(user, "client", None)
    if not isinstance(client, BaseLLMClient):
        raise UserError(f"--batch sends LLM requests as provider batches; the {role} {user.name!r} makes none")
    batched = BatchedClient(client, max_tries=client.retry.max_attempts)
    user.client = batched  # type: ignore[union-attr]
    return batched


async def _rounds(
    pending: list[T], process: Callable[[T], Awaitable[None]], client: BatchedClient, settings: BatchSettings
) -> None:
    try:
        while True:
            await client.collect(poll_s=settings.poll_interval, max_wait_s=settings.max_wait, say=_say)
            waiting = []
            for item in pending:
                try:
                    await process(item)
                except AwaitingBatch:
                    waiting.append(item)
            pending = waiting
            if not pending:
                return
            await client.submit(_say)  # a unit waits only on a request complete() queued
    finally:
        await client.client.aclose()


def _say(message: str) -> None:
    print(message, file=sys.stderr)
