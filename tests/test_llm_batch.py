"""Provider batch APIs through the official SDKs against the fake server: submit, poll, collect,
half price, and the answers landing in the response cache so the live path then makes no calls."""

from __future__ import annotations

import asyncio

import pytest

from autointerp.llm import ChatMessage, ChatRequest, RetryPolicy, make_llm_client
from autointerp.llm.batch import BatchError, collect_batch, submit_batch, wait_for_batch
from autointerp.store import SQLiteLedger
from autointerp.testing.fake_llm_server import FakeLLMServer, FakeReply

FAST = RetryPolicy(max_attempts=2, initial_wait_s=0.001, max_wait_s=0.01, jitter_s=0.001)


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-batch-key-000000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "fake-anthropic-batch-key")


def requests(n: int) -> dict[str, ChatRequest]:
    return {f"feature-{i}": ChatRequest(messages=[ChatMessage(role="user", content=f"explain {i}")]) for i in range(n)}


def client_for(spec: str, server: FakeLLMServer, ledger: SQLiteLedger):
    base_url = server.openai_base_url if spec.startswith("openai") else server.anthropic_base_url
    return make_llm_client(
        spec, base_url=base_url, ledger=ledger, retry=FAST, prices={"m": {"input": 2.0, "output": 0.0}}
    )


@pytest.mark.parametrize("spec", ["openai:m", "anthropic:m"])
def test_batch_round_trip_fills_the_cache(fake_llm_server: FakeLLMServer, ledger, spec) -> None:
    fake_llm_server.responder = lambda body, api: FakeReply("label", prompt_tokens=1_000_000, completion_tokens=1)
    fake_llm_server.batch_fail_ids = {"feature-2"}
    batch = requests(3)
    client = client_for(spec, fake_llm_server, ledger)

    async def flow():
        batch_id = await submit_batch(client, batch)
        assert await collect_batch(client, batch_id, batch) is None  # still running
        return await wait_for_batch(client, batch_id, batch, poll_s=0.01, timeout_s=5)

    results = asyncio.run(flow())
    assert sorted(results) == ["feature-0", "feature-1", "feature-2"]
    assert results["feature-0"].response.text == "label"
    assert results["feature-0"].response.cost_usd == pytest.approx(1.0)  # half of $2 per 1M
    assert results["feature-2"].response is None and results["feature-2"].error
    assert ledger.total_cost() == pytest.approx(2.0)
    assert [b["status"] for b in ledger.batches()] == ["collected"]

    before = fake_llm_server.request_count
    live = asyncio.run(client.complete(batch["feature-1"]))
    assert live.cached and live.text == "label"
    assert fake_llm_server.request_count == before  # served from the cache
    asyncio.run(client.complete(batch["feature-2"]))  # the failed one goes live
    assert fake_llm_server.request_count == before + 1


def test_batch_input_is_checked(fake_llm_server: FakeLLMServer, ledger) -> None:
    openai_client = client_for("openai:m", fake_llm_server, ledger)
    with pytest.raises(BatchError, match="custom ids"):
        asyncio.run(submit_batch(openai_client, {"has space": requests(1)["feature-0"]}))
    with pytest.raises(BatchError, match="at least one"):
        asyncio.run(submit_batch(openai_client, {}))
    local = make_llm_client("openai-compatible:m", base_url=fake_llm_server.openai_base_url)
    with pytest.raises(BatchError, match="no batch API"):
        asyncio.run(submit_batch(local, requests(1)))
    assert fake_llm_server.request_count == 0
