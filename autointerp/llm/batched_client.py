"""The client a batch run gives its explainer or simulator: answers from provider batches, never live.

A stage walks its units with this client in rounds (autointerp/batch_labeling.py). `complete` answers
a request from the response cache when a batch (or an earlier live run) answered it, and otherwise
queues it and raises AwaitingBatch, so the unit waits for the next round; `submit` sends the queue as
new batches, their worst-case cost at the batch price held in the budget first; `collect` waits for
every open batch of this model (those of a killed run too, found in the ledger) and files the answers.

An answer collected by this process is served as paid (its batch-price cost, as a live answer's would
be); an answer cached before is served as a cache hit (cost 0), as the live client does. A request a
batch left unanswered is sent again in the next batch, up to `max_tries` batches in this run; then it
fails as LLMCallError, and a cut-off or off-schema answer raises InvalidReplyError, exactly where the
live client raises them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from autointerp.llm.base import ChatRequest, ChatResponse
from autointerp.llm.batch import MAX_REQUESTS, BatchError, batch_done, batch_outcomes, submit_batch
from autointerp.llm.budget import BudgetExceeded
from autointerp.llm.client import BaseLLMClient
from autointerp.llm.errors import InvalidReplyError, LLMCallError
from autointerp.llm.ledger import BatchOutcome, LLMLedger, OpenBatch
from autointerp.llm.pricing import BATCH_FACTOR


class AwaitingBatch(BaseException):
    """A request no batch has answered yet. A BaseException, so that no explainer's or scorer's
    `except Exception` records the unit as failed: the unit is simply taken up again next round."""


class BatchStillRunning(BatchError):
    """--max-wait passed with batches still running; they stay recorded for the next run."""


class BatchedClient:
    """An LLMClient (name, supports_logprobs, complete) over a BaseLLMClient's batch API."""

    def __init__(self, client: BaseLLMClient, *, max_tries: int):
        if client.backend not in MAX_REQUESTS:
            raise BatchError(f"{client.name}: no batch API for {client.backend} servers; drop --batch")
        if client.ledger is None:
            raise BatchError(f"{client.name}: batch runs keep their batches in a catalog's ledger; none was given")
        self.client = client
        self.ledger: LLMLedger = client.ledger
        self.name = client.name
        self.supports_logprobs = client.supports_logprobs
        self.max_tries = max_tries
        self.queued: dict[str, ChatRequest] = {}  # cache key -> request, for the next batch
        self._collected: dict[str, BatchOutcome] = {}  # cache key -> what this process's batches gave
        self._tries: Counter[str] = Counter()  # cache key -> batches collected in this run without an answer
        self._held: dict[str, float] = {}  # batch id -> its reservation in the budget

    async def complete(self, request: ChatRequest) -> ChatResponse:
        request = self.client.with_model(request)
        key = self.client.cache_key(request)
        outcome = self._collected.get(key)
        hit = self.ledger.cache_get(key)
        if hit is not None:
            if outcome is not None and outcome.status == "ok":
                return ChatResponse(**hit)  # paid for by this run's batch
            return ChatResponse(**{**hit, "cached": True, "cost_usd": 0.0})
        if outcome is not None and outcome.status == "invalid" and outcome.response is not None:
            raise InvalidReplyError(f"{self.name}: {outcome.error}", ChatResponse(**outcome.response))
        if outcome is not None and outcome.status == "failed" and self._tries[key] >= self.max_tries:
            raise LLMCallError(
                f"{self.name}: no answer from {self._tries[key]} batches: {outcome.error}", attempts=self._tries[key]
            )
        self.queued[key] = request
        raise AwaitingBatch(key)

    def forget(self, request: ChatRequest) -> None:
        self.client.forget(request)

    # ---- sending and collecting --------------------------------------------------------------

    async def submit(self, say: Callable[[str], None]) -> None:
        """Send the queued requests as batches (as many as the budget's cap allows, worst case at the
        batch price; raises BudgetExceeded if not even one fits)."""
        queued, self.queued = self.queued, {}
        costs = {key: self.client.worst_case_usd(request) * BATCH_FACTOR for key, request in queued.items()}
        budget = self.client.budget
        if budget is not None and budget.limited:
            budget.check()
            fitting: dict[str, ChatRequest] = {}
            for key, request in queued.items():
                if not budget.try_reserve(costs[key]):
                    break
                fitting[key] = request
            if not fitting:
                raise BudgetExceeded(budget)
            queued = fitting
        else:
            costs = dict.fromkeys(costs, 0.0)
        keys = list(queued)
        limit = MAX_REQUESTS[self.client.backend]
        for start in range(0, len(keys), limit):
            part = {key: queued[key] for key in keys[start : start + limit]}
            batch_id = await submit_batch(self.client, part)
            reserved = sum(costs[key] for key in part)
            self.ledger.put_batch(
                batch_id,
                backend=self.client.backend,
                model=self.client.model,
                requests={key: request.model_dump(mode="json") for key, request in part.items()},
                reserved_usd=reserved,
            )
            self._held[batch_id] = reserved
            say(f"submitted batch {batch_id} ({len(part)} requests to {self.name})")

    async def collect(self, *, poll_s: float, max_wait_s: float | None, say: Callable[[str], None]) -> None:
        """Wait until every open batch of this model is done, polling every `poll_s` seconds, and file
        its answers; raises BatchStillRunning after `max_wait_s`."""
        loop = asyncio.get_running_loop()
        deadline = None if max_wait_s is None else loop.time() + max_wait_s
        announced: set[str] = set()
        while True:
            running = []
            for batch in self.ledger.open_batches(self.client.backend, self.client.model):
                self._hold(batch)
                if await batch_done(self.client, batch.batch_id):
                    await self._file(batch, say)
                    continue
                running.append(batch.batch_id)
                if batch.batch_id not in announced:
                    announced.add(batch.batch_id)
                    say(f"waiting for batch {batch.batch_id}; polling every {poll_s:g} s")
            if not running:
                return
            if deadline is not None and loop.time() + poll_s > deadline:
                raise BatchStillRunning(
                    f"batch(es) {', '.join(running)} still running after {max_wait_s:g} s; they are recorded in "
                    "the catalog: run the same command again to collect them"
                )
            await asyncio.sleep(poll_s)

    def _hold(self, batch: OpenBatch) -> None:
        """Count an open batch's reservation once per process (one submitted by an earlier run too)."""
        if batch.batch_id not in self._held:
            self._held[batch.batch_id] = batch.reserved_usd
            if self.client.budget is not None:
                self.client.budget.hold(batch.reserved_usd)

    async def _file(self, batch: OpenBatch, say: Callable[[str], None]) -> None:
        """File a finished batch's answers and errors in the ledger (one transaction) and settle its
        reservation to what it cost."""
        sent = self.ledger.batch_requests(batch.batch_id)
        requests = {key: ChatRequest.model_validate(request) for key, request in sent.items()}
        outcomes = await batch_outcomes(self.client, batch.batch_id, requests)
        calls = [
            self.client.call_record(
                o.key,
                status="ok" if o.status == "ok" else "error",
                attempt=self._tries[o.key] + 1,
                response=ChatResponse(**o.response) if o.response is not None else None,
                error=None if o.status == "ok" else f"batch {batch.batch_id}: {o.error}",
            )
            for o in outcomes
        ]
        self.ledger.finish_batch(batch.batch_id, outcomes, calls)
        held = self._held.pop(batch.batch_id)
        if self.client.budget is not None:
            self.client.budget.settle(held, sum(call.cost_usd for call in calls))
        for outcome in outcomes:
            self._collected[outcome.key] = outcome
            self._tries[outcome.key] += outcome.status == "failed"
        counts = Counter(o.status for o in outcomes)
        say(
            f"collected batch {batch.batch_id}: {counts['ok']} answered, {counts['failed']} without an answer, "
            f"{counts['invalid']} cut off or off-schema"
        )
