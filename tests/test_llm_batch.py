"""BatchedClient through the official SDKs against the fake server's batch endpoints: a request is
queued, sent, polled and answered at half price into the response cache; an open batch's reservation
is held by a restarted process; a cut-off answer is raised as a live call would raise it."""

from __future__ import annotations

import asyncio

import pytest

from autointerp.llm import Budget, ChatMessage, ChatRequest, InvalidReplyError, RetryPolicy, make_llm_client
from autointerp.llm.batched_client import AwaitingBatch, BatchedClient, BatchStillRunning
from autointerp.store import SQLiteLedger
from autointerp.testing.fake_llm_server import FakeLLMServer, FakeReply

FAST = RetryPolicy(max_attempts=2, initial_wait_s=0.001, max_wait_s=0.01, jitter_s=0.001)
PRICES = {"m": {"input": 2.0, "output": 0.0}}
REQUEST = ChatRequest(messages=[ChatMessage(role="user", content="explain unit 7")], max_tokens=16)


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-batch-key-000000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "fake-anthropic-batch-key")


def client_for(spec: str, server: FakeLLMServer, ledger: SQLiteLedger, budget: Budget | None = None):
    base_url = server.openai_base_url if spec.startswith("openai") else server.anthropic_base_url
    return make_llm_client(spec, base_url=base_url, ledger=ledger, retry=FAST, prices=PRICES, budget=budget)


async def ask(batched: BatchedClient, request: ChatRequest = REQUEST):
    try:
        return await batched.complete(request)
    except AwaitingBatch:
        return None


def said() -> tuple[list[str], object]:
    lines: list[str] = []
    return lines, lines.append


@pytest.mark.parametrize("spec", ["openai:m", "anthropic:m"])
def test_a_queued_request_is_sent_polled_and_answered_at_half_price(
    fake_llm_server: FakeLLMServer, ledger: SQLiteLedger, spec: str
) -> None:
    fake_llm_server.responder = lambda body, api: FakeReply("label", prompt_tokens=1_000_000, completion_tokens=1)
    client = client_for(spec, fake_llm_server, ledger)
    batched = BatchedClient(client, max_tries=2)
    lines, say = said()

    async def flow():
        assert await ask(batched) is None and list(batched.queued) == [client.cache_key(REQUEST)]
        await batched.submit(say)
        await batched.collect(poll_s=0.01, max_wait_s=5, say=say)
        return await ask(batched)

    answer = asyncio.run(flow())
    assert answer is not None and answer.text == "label" and not answer.cached
    assert answer.cost_usd == pytest.approx(1.0)  # half of $2 per 1M prompt tokens
    assert [line.split()[0] for line in lines] == ["submitted", "waiting", "collected"]
    assert ledger.total_cost() == pytest.approx(1.0)
    assert ledger.open_batches(client.backend, client.model) == []
    before = fake_llm_server.request_count
    live = asyncio.run(client.complete(REQUEST))
    assert live.cached and live.text == "label" and fake_llm_server.request_count == before  # from the cache


def test_a_restarted_process_holds_the_open_batch_in_the_budget(
    fake_llm_server: FakeLLMServer, ledger: SQLiteLedger
) -> None:
    fake_llm_server.batch_polls_until_done = 10**6
    first = BatchedClient(client_for("openai:m", fake_llm_server, ledger, Budget(1.0)), max_tries=2)
    _, say = said()

    async def submit() -> None:
        await ask(first)
        await first.submit(say)

    asyncio.run(submit())
    [open_batch] = ledger.open_batches("openai", "m")
    assert open_batch.reserved_usd > 0
    budget = Budget(1.0, spent_usd=ledger.total_cost())
    second = BatchedClient(client_for("openai:m", fake_llm_server, ledger, budget), max_tries=2)
    with pytest.raises(BatchStillRunning, match="run the same command again"):
        asyncio.run(second.collect(poll_s=0.01, max_wait_s=0.03, say=say))
    assert budget.reserved_usd == pytest.approx(open_batch.reserved_usd)
    fake_llm_server.batch_polls_until_done = 0
    asyncio.run(second.collect(poll_s=0.01, max_wait_s=1, say=say))
    assert budget.reserved_usd == pytest.approx(0.0) and budget.spent_usd == pytest.approx(ledger.total_cost())
    assert len(fake_llm_server.batch_submissions) == 1


@pytest.mark.parametrize("spec", ["openai:m", "anthropic:m"])
def test_a_cut_off_answer_is_raised_as_a_live_call_raises_it(
    fake_llm_server: FakeLLMServer, ledger: SQLiteLedger, spec: str
) -> None:
    fake_llm_server.responder = lambda body, api: FakeReply("half an ans", finish_reason="length")
    client = client_for(spec, fake_llm_server, ledger)
    batched = BatchedClient(client, max_tries=2)
    _, say = said()

    async def flow() -> None:
        await ask(batched)
        await batched.submit(say)
        await batched.collect(poll_s=0.01, max_wait_s=5, say=say)
        await batched.complete(REQUEST)

    with pytest.raises(InvalidReplyError) as raised:
        asyncio.run(flow())
    assert raised.value.response.text == "half an ans"
    assert ledger.cache_get(client.cache_key(REQUEST)) is None  # never cached, as live
    assert [c["status"] for c in ledger.llm_calls()] == ["error"]
