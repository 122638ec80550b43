"""Provider batch APIs on the wire: submit requests as one batch, see whether it is done, read its answers.

OpenAI takes a JSONL file of chat-completion bodies (files.create + batches.create); Anthropic takes the
Messages parameters inline (messages.batches.create). Both answer within 24 hours, out of order, named by
custom id, at half the live price. The custom id of a request is its response-cache key, so an answer
lands in the cache under the key a live call would use. What to send and when is BatchedClient's job
(batched_client.py); nothing here touches the ledger.
"""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from autointerp.errors import UserError
from autointerp.llm.anthropic_backend import AnthropicClient
from autointerp.llm.base import ChatRequest, ChatResponse
from autointerp.llm.client import BaseLLMClient
from autointerp.llm.errors import LLMCallError
from autointerp.llm.ledger import BatchOutcome
from autointerp.llm.openai_backend import OpenAIClient
from autointerp.llm.retry import SDK_ERRORS, call_with_retries
from autointerp.llm.validate import reply_problem

MAX_REQUESTS = {"openai": 50_000, "anthropic": 100_000}
_OPENAI_RUNNING = {"validating", "in_progress", "finalizing", "cancelling"}
Results = dict[str, tuple[Any, str | None]]  # custom id -> (answer body, None) or (None, why there is none)


class BatchError(UserError):
    """A batch cannot be used as asked (a server without a batch API, the provider unreachable)."""


async def _with_retries(client: BaseLLMClient, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
    """`call` under the client's retry policy; a failure that outlasts it becomes one clear error."""
    try:
        return await call_with_retries(lambda attempt: call(), client.retry, label=f"{client.name} {what}")
    except SDK_ERRORS as exc:
        error = client._translate(exc)
        if isinstance(error, LLMCallError):
            raise BatchError(f"{what} failed: {error}; run the same command again to continue") from exc
        raise error from exc


async def submit_batch(client: BaseLLMClient, requests: Mapping[str, ChatRequest]) -> str:
    """Send `requests` (cache key -> request as sent) as one provider batch; returns its id."""
    sdk = (await client._for_loop()).sdk

    async def submit() -> str:
        if isinstance(client, OpenAIClient):
            lines = [
                json.dumps(
                    {"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": client.wire_params(r)}
                )
                for key, r in requests.items()
            ]
            upload = await sdk.files.create(
                file=("batch.jsonl", io.BytesIO("\n".join(lines).encode())), purpose="batch"
            )
            batch = await sdk.batches.create(
                input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            return str(batch.id)
        assert isinstance(client, AnthropicClient)  # BatchedClient admits no other backend
        created = await sdk.messages.batches.create(
            requests=[{"custom_id": key, "params": client.wire_params(r)} for key, r in requests.items()]
        )
        return str(created.id)

    return str(await _with_retries(client, "submitting a batch", submit))


async def batch_done(client: BaseLLMClient, batch_id: str) -> bool:
    """Whether the provider has finished with the batch (answered, expired, cancelled or failed)."""
    sdk = (await client._for_loop()).sdk

    async def status() -> bool:
        if isinstance(client, OpenAIClient):
            return (await sdk.batches.retrieve(batch_id)).status not in _OPENAI_RUNNING
        return (await sdk.messages.batches.retrieve(batch_id)).processing_status == "ended"

    return bool(await _with_retries(client, f"polling batch {batch_id}", status))


async def batch_outcomes(
    client: BaseLLMClient, batch_id: str, requests: Mapping[str, ChatRequest]
) -> list[BatchOutcome]:
    """What a finished batch gave for each of its `requests`: an answer priced at the batch rate
    ("ok", or "invalid" when cut off or off-schema, as a live call judges it) or an error ("failed":
    refused, expired, missing)."""
    sdk = (await client._for_loop()).sdk

    async def read() -> tuple[Results, str]:
        if isinstance(client, OpenAIClient):
            return await _openai_results(sdk, batch_id)
        return await _anthropic_results(sdk, batch_id), "the batch returned no answer for this request"

    found, missing = await _with_retries(client, f"reading batch {batch_id}", read)
    outcomes = []
    for key, request in requests.items():
        raw, error = found.get(key, (None, missing))
        response = None
        if raw is not None:
            try:
                response, cost = client.parse_reply(raw, request, batch=True)  # type: ignore[attr-defined]
                response.cost_usd = cost
            except (ValueError, LLMCallError) as exc:
                error = f"unreadable batch answer: {exc}"
        outcomes.append(_outcome(client, key, request, response, error))
    return outcomes


def _outcome(
    client: BaseLLMClient, key: str, request: ChatRequest, response: ChatResponse | None, error: str | None
) -> BatchOutcome:
    sent = request.model_dump(mode="json")
    if response is None:
        return BatchOutcome(key=key, status="failed", request=sent, error=client._redact(error or "no answer"))
    problem = reply_problem(request, response)
    return BatchOutcome(
        key=key,
        status="ok" if problem is None else "invalid",
        request=sent,
        response=response.model_dump(mode="json"),
        error=problem,
    )


async def _openai_results(sdk: Any, batch_id: str) -> tuple[Results, str]:
    """custom id -> (chat completion body, None) or (None, error), from the output and error files;
    and why a request missing from both has no answer."""
    batch = await sdk.batches.retrieve(batch_id)
    if batch.status == "failed":  # the whole input was refused: every request failed alike
        return {}, f"the batch failed: {batch.errors}"
    found: Results = {}
    for file_id in (batch.output_file_id, batch.error_file_id):
        if not file_id:
            continue
        content = await sdk.files.content(file_id)
        for line in content.text.splitlines():
            try:
                item = json.loads(line)
                key = item["custom_id"]
            except (ValueError, KeyError, TypeError):
                continue  # an unreadable line: its request ends up without an answer
            response, error = item.get("response") or {}, item.get("error")
            if error:  # not executed (expired, cancelled): {code, message}
                found[key] = (
                    None,
                    f"{error.get('code')}: {error.get('message')}" if isinstance(error, dict) else str(error),
                )
            elif response.get("status_code") != 200:
                detail = (response.get("body") or {}).get("error") or response
                found[key] = (None, f"HTTP {response.get('status_code')}: {detail}")
            else:
                found[key] = (response.get("body"), None)
    return found, f"the batch {batch.status} without an answer for this request"


async def _anthropic_results(sdk: Any, batch_id: str) -> Results:
    """custom id -> (message, None) or (None, why it has none: errored, canceled, expired)."""
    found: Results = {}
    async for item in await sdk.messages.batches.results(batch_id):
        outcome = item.result
        if outcome.type == "succeeded":
            found[item.custom_id] = (outcome.message, None)
        else:
            detail = getattr(outcome, "error", None)
            found[item.custom_id] = (None, f"{outcome.type}: {detail or ''}".strip(" :"))
    return found
