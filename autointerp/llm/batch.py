"""Provider batch APIs for bulk labelling: half the price, answers within 24 hours.

The flow reuses the live path: build the same ChatRequests a stage would send, `submit_batch` them,
later `collect_batch` (or `wait_for_batch`). Each answer is priced at the batch rate, logged, and put in
the ledger's response cache under the key `complete()` uses, so running the stage afterwards is served
entirely from the cache. Submitted batch ids are kept in the ledger so a restarted run collects them
instead of paying twice.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from autointerp.errors import UserError
from autointerp.llm.anthropic_backend import AnthropicClient
from autointerp.llm.base import ChatRequest, ChatResponse
from autointerp.llm.client import BaseLLMClient
from autointerp.llm.errors import LLMCallError
from autointerp.llm.openai_backend import OpenAIClient
from autointerp.llm.retry import SDK_ERRORS, call_with_retries
from autointerp.llm.validate import reply_problem

MAX_REQUESTS = {"openai": 50_000, "anthropic": 100_000}
_CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # Anthropic's rule; OpenAI accepts these too
_OPENAI_PENDING = {"validating", "in_progress", "finalizing"}
_OPENAI_FAILED = {"failed"}


class BatchError(UserError):
    """A batch cannot be submitted as asked (wrong backend, bad ids, too many requests)."""


class BatchResult(BaseModel):
    custom_id: str
    response: ChatResponse | None = None
    error: str | None = None


def _check(client: BaseLLMClient, requests: Mapping[str, ChatRequest]) -> None:
    if client.backend not in MAX_REQUESTS:
        raise BatchError(f"{client.name}: no batch API for {client.backend} servers; use live calls")
    if not requests:
        raise BatchError("a batch needs at least one request")
    if len(requests) > MAX_REQUESTS[client.backend]:
        raise BatchError(
            f"{len(requests)} requests exceed the {client.backend} batch limit of "
            f"{MAX_REQUESTS[client.backend]}; split them"
        )
    bad = [cid for cid in requests if not _CUSTOM_ID.match(cid)]
    if bad:
        raise BatchError(f"batch custom ids must match [A-Za-z0-9_-]{{1,64}}: {bad[:3]}")


async def submit_batch(client: BaseLLMClient, requests: Mapping[str, ChatRequest]) -> str:
    """Send `requests` (custom id -> request) as one provider batch; returns the batch id."""
    _check(client, requests)
    if client.budget is not None:
        client.budget.check()
    sdk = client._for_loop().sdk
    prepared = {cid: client.with_model(r) for cid, r in requests.items()}

    async def _submit(attempt: int) -> str:
        if isinstance(client, OpenAIClient):
            lines = [
                json.dumps(
                    {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": client.wire_params(r)}
                )
                for cid, r in prepared.items()
            ]
            upload = await sdk.files.create(
                file=("batch.jsonl", io.BytesIO("\n".join(lines).encode())), purpose="batch"
            )
            batch = await sdk.batches.create(
                input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            return batch.id
        assert isinstance(client, AnthropicClient)
        batch = await sdk.messages.batches.create(
            requests=[{"custom_id": cid, "params": client.wire_params(r)} for cid, r in prepared.items()]
        )
        return batch.id

    try:
        batch_id = await call_with_retries(_submit, client.retry, label=f"{client.name} batch")
    except SDK_ERRORS as exc:
        raise client._translate(exc) from exc
    if client.ledger is not None:
        client.ledger.put_batch(
            batch_id, backend=client.backend, model=client.model, n_requests=len(requests), status="submitted"
        )
    return batch_id


async def collect_batch(
    client: BaseLLMClient, batch_id: str, requests: Mapping[str, ChatRequest]
) -> dict[str, BatchResult] | None:
    """The results by custom id, or None while the provider is still working.

    `requests` must be the ones submitted (rebuilt the same way is fine): they give each answer its
    cache key. Every request gets a result; those the provider did not answer carry an error.
    """
    sdk = client._for_loop().sdk
    try:
        if isinstance(client, OpenAIClient):
            raw = await _collect_openai(client, sdk, batch_id, requests)
        elif isinstance(client, AnthropicClient):
            raw = await _collect_anthropic(client, sdk, batch_id, requests)
        else:
            raise BatchError(f"{client.name}: no batch API for {client.backend} servers")
    except SDK_ERRORS as exc:
        raise client._translate(exc) from exc
    if raw is None:
        return None
    results: dict[str, BatchResult] = {}
    for cid, request in requests.items():
        result = raw.get(cid) or BatchResult(custom_id=cid, error="the batch returned no result for this request")
        key = client.cache_key(request)
        problem = reply_problem(client.with_model(request), result.response) if result.response else None
        if problem is not None:
            result = BatchResult(custom_id=cid, error=problem)
        if result.response is not None:
            client.remember(client.with_model(request), key, result.response)
            client.log_call(key, status="ok", attempt=1, response=result.response)
        else:
            client.log_call(key, status="error", attempt=1, error=f"batch {batch_id}: {result.error}")
        results[cid] = result
    if client.ledger is not None:
        client.ledger.put_batch(
            batch_id, backend=client.backend, model=client.model, n_requests=len(requests), status="collected"
        )
    return results


async def wait_for_batch(
    client: BaseLLMClient,
    batch_id: str,
    requests: Mapping[str, ChatRequest],
    *,
    poll_s: float = 60.0,
    timeout_s: float | None = None,
) -> dict[str, BatchResult] | None:
    """Poll `collect_batch` every `poll_s` until done; None if `timeout_s` passes first."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    while True:
        results = await collect_batch(client, batch_id, requests)
        if results is not None:
            return results
        if deadline is not None and loop.time() + poll_s > deadline:
            return None
        await asyncio.sleep(poll_s)


async def _collect_openai(
    client: OpenAIClient, sdk: Any, batch_id: str, requests: Mapping[str, ChatRequest]
) -> dict[str, BatchResult] | None:
    batch = await sdk.batches.retrieve(batch_id)
    if batch.status in _OPENAI_PENDING:
        return None
    if batch.status in _OPENAI_FAILED:
        errors = getattr(batch, "errors", None)
        raise LLMCallError(f"{client.name}: batch {batch_id} failed: {client._redact(str(errors))}")
    # completed, expired or cancelled: read whatever answers exist
    results: dict[str, BatchResult] = {}
    for file_id in (batch.output_file_id, batch.error_file_id):
        if not file_id:
            continue
        content = await sdk.files.content(file_id)
        for line in content.text.splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                continue  # an unreadable line: its request ends up with "no result"
            cid = item.get("custom_id", "") if isinstance(item, dict) else ""
            if cid not in requests:
                continue
            results[cid] = _openai_item(client, cid, item, requests[cid])
    return results


def _openai_item(client: OpenAIClient, cid: str, item: dict, request: ChatRequest) -> BatchResult:
    response = item.get("response") or {}
    if item.get("error") or response.get("status_code") != 200:
        detail = item.get("error") or (response.get("body") or {}).get("error") or response
        return BatchResult(custom_id=cid, error=client._redact(f"HTTP {response.get('status_code')}: {detail}"))
    try:
        parsed, cost = client.parse_reply(response["body"], client.with_model(request), batch=True)
    except (ValueError, LLMCallError) as exc:
        return BatchResult(custom_id=cid, error=f"unreadable batch answer: {exc}")
    parsed.cost_usd = cost
    return BatchResult(custom_id=cid, response=parsed)


async def _collect_anthropic(
    client: AnthropicClient, sdk: Any, batch_id: str, requests: Mapping[str, ChatRequest]
) -> dict[str, BatchResult] | None:
    batch = await sdk.messages.batches.retrieve(batch_id)
    if batch.processing_status != "ended":
        return None
    results: dict[str, BatchResult] = {}
    async for item in await sdk.messages.batches.results(batch_id):
        cid = item.custom_id
        if cid not in requests:
            continue
        outcome = item.result
        if outcome.type != "succeeded":
            detail = getattr(outcome, "error", None)
            results[cid] = BatchResult(custom_id=cid, error=client._redact(f"{outcome.type}: {detail or ''}".strip()))
            continue
        try:
            parsed, cost = client.parse_reply(outcome.message, client.with_model(requests[cid]), batch=True)
        except LLMCallError as exc:
            results[cid] = BatchResult(custom_id=cid, error=str(exc))
            continue
        parsed.cost_usd = cost
        results[cid] = BatchResult(custom_id=cid, response=parsed)
    return results
