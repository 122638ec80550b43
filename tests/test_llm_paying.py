"""What a paying user relies on, through the official SDKs to the local server in both wire formats:
each answer is paid once, cut-off or off-schema answers are failures (never cached), the budget is
kept under concurrency, a dead or refusing server stops the stage, and the config forms are accepted."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from autointerp.explainers.llm import LLMExplainer
from autointerp.llm import (
    Budget,
    BudgetExceeded,
    ChatMessage,
    ChatRequest,
    InvalidReplyError,
    LLMCallError,
    LLMUnreachableError,
    RetryPolicy,
    ToolSpec,
    UnpricedModelError,
    make_llm_client,
)
from autointerp.llm.client import request_cache_key
from autointerp.llm.pricing import prompt_token_bound, worst_case_cost
from autointerp.store import open_store
from autointerp.testing.fake_llm_server import FakeLLMServer, FakeReply, FakeToken, Fault
from autointerp.testing.planted import planted_harvest, planted_units

FAST = RetryPolicy(max_attempts=2, initial_wait_s=0.001, max_wait_s=0.01, jitter_s=0.001)
SPECS = {"openai": "openai:gpt-4o-mini", "anthropic": "anthropic:claude-haiku-4-5"}
APIS = ["openai", "anthropic"]


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "fake-openai-paying-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "fake-anthropic-paying-key")


def client_for(server: FakeLLMServer, api: str, **kwargs):
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("timeout", 5)
    base = server.openai_base_url if api == "openai" else server.anthropic_base_url
    return make_llm_client(SPECS[api], base_url=base, **kwargs)


def ask(text: str, **params) -> ChatRequest:
    return ChatRequest(messages=[ChatMessage(role="user", content=text)], **params)


def run(coro):
    return asyncio.run(coro)


async def gather(client, requests: list[ChatRequest]) -> list:
    return await asyncio.gather(*(client.complete(r) for r in requests), return_exceptions=True)


# ---- pay once ----------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_identical_requests_in_flight_are_paid_once(fake_llm_server, ledger, api) -> None:
    fake_llm_server.latency_s = 0.05
    client = client_for(fake_llm_server, api, ledger=ledger, concurrency=8)
    answers = run(gather(client, [ask("the same question") for _ in range(16)]))
    assert fake_llm_server.request_count == 1
    assert {a.text for a in answers} == {"echo: the same question"}
    assert sum(not a.cached for a in answers) == 1 and sum(a.cost_usd > 0 for a in answers) == 1
    statuses = [c["status"] for c in ledger.llm_calls()]
    assert statuses.count("ok") == 1 and statuses.count("cached") == 15


def test_the_cache_is_checked_again_after_waiting_for_a_slot(fake_llm_server, ledger) -> None:
    def responder(body, api):
        if "slow" in json.dumps(body["messages"]):
            time.sleep(0.3)
        return "answer"

    fake_llm_server.responder = responder
    busy = client_for(fake_llm_server, "openai", ledger=ledger, concurrency=1)
    other = client_for(fake_llm_server, "openai", ledger=ledger, concurrency=1)

    async def both():
        slow = asyncio.create_task(busy.complete(ask("slow")))
        await asyncio.sleep(0.05)  # `busy` holds its only slot; its next request waits for it
        waiting = asyncio.create_task(busy.complete(ask("q")))
        await other.complete(ask("q"))  # answered and cached meanwhile
        return await slow, await waiting

    _, waited = run(both())
    assert waited.cached and fake_llm_server.request_count == 2


def test_the_cache_key_names_no_url(ledger) -> None:
    with FakeLLMServer() as first, FakeLLMServer() as second:
        run(client_for(first, "openai", ledger=ledger).complete(ask("q")))
        again = run(client_for(second, "openai", ledger=ledger).complete(ask("q")))
        assert again.cached and second.request_count == 0


CHILD = """
import asyncio, sys
from autointerp.llm import ChatMessage, ChatRequest, make_llm_client
from autointerp.store import open_store
store = open_store(sys.argv[1])
client = make_llm_client("openai:gpt-4o-mini", base_url=sys.argv[2], ledger=store.ledger, concurrency=4)
requests = [ChatRequest(messages=[ChatMessage(role="user", content=f"q{i}")]) for i in range(40)]
async def main():
    await asyncio.gather(*(client.complete(r) for r in requests))
asyncio.run(main())
"""


def test_a_killed_run_repays_only_what_had_no_recorded_answer(tmp_path) -> None:
    db = tmp_path / "killed.db"
    open_store(db).close()
    with FakeLLMServer(latency_s=0.1) as server:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), server.openai_base_url], env=os.environ.copy())
        deadline = time.monotonic() + 60
        while server.request_count < 16 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        first = server.request_count
        assert 16 <= first < 40
        with open_store(db) as store:
            cached = store.db.execute("SELECT COUNT(*) FROM llm_cache").fetchone()[0]
            client = make_llm_client("openai:gpt-4o-mini", base_url=server.openai_base_url, ledger=store.ledger)
            run(gather(client, [ask(f"q{i}") for i in range(40)]))
        repaid = server.request_count - first
    assert repaid == 40 - cached  # every recorded answer is reused
    assert first + repaid - 40 <= 4  # paid twice: at most the requests in flight at the kill


# ---- validate replies --------------------------------------------------------------------------


@pytest.mark.parametrize(("api", "reason"), [("openai", "length"), ("anthropic", "max_tokens")])
def test_a_cut_off_explanation_is_a_failure_and_not_cached(fake_llm_server, ledger, api, reason) -> None:
    fake_llm_server.responder = lambda body, wire: FakeReply(
        'Explanation: {"explanation": "the tok', finish_reason=reason
    )
    client = client_for(fake_llm_server, api, ledger=ledger)
    explainer = LLMExplainer(client)
    harvest = planted_harvest(planted_units(1)[0])
    with pytest.raises(InvalidReplyError, match="cut off"):
        run(explainer.explain(harvest))
    with pytest.raises(InvalidReplyError):
        run(explainer.explain(harvest))
    assert fake_llm_server.request_count == 2  # not cached: asked again
    assert ledger.db.execute("SELECT COUNT(*) FROM llm_cache").fetchone()[0] == 0
    assert ledger.total_cost() > 0  # what the cut-off answers cost is still counted


@pytest.mark.parametrize("api", APIS)
def test_an_off_schema_answer_is_a_failure(fake_llm_server, ledger, api) -> None:
    schema = {"type": "object", "properties": {"answers": {"type": "array"}}, "required": ["answers"]}
    fake_llm_server.responder = lambda body, wire: json.dumps({"answer": [1]})
    with pytest.raises(InvalidReplyError, match="lacks \\['answers'\\]"):
        run(client_for(fake_llm_server, api, ledger=ledger).complete(ask("judge", json_schema=schema)))
    fake_llm_server.responder = lambda body, wire: json.dumps({"answers": "yes"})
    with pytest.raises(InvalidReplyError, match="not of type array"):
        run(client_for(fake_llm_server, api, ledger=ledger).complete(ask("judge", json_schema=schema)))
    assert ledger.db.execute("SELECT COUNT(*) FROM llm_cache").fetchone()[0] == 0


# ---- the budget --------------------------------------------------------------------------------

PRICES = {"gpt-4o-mini": {"input": 300.0, "output": 600.0}, "claude-haiku-4-5": {"input": 300.0, "output": 600.0}}


@pytest.mark.parametrize("api", APIS)
def test_the_budget_holds_under_concurrency(fake_llm_server, ledger, api) -> None:
    fake_llm_server.latency_s = 0.03
    fake_llm_server.responder = lambda body, wire: "a reply of some eight words, give or take"
    budget = Budget(max_cost_usd=0.2)
    client = client_for(fake_llm_server, api, ledger=ledger, budget=budget, prices=PRICES, concurrency=8)
    requests = [ask(f"question number {i} about this unit", max_tokens=40) for i in range(60)]
    outcomes = run(gather(client, requests))
    stopped = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    answered = [o for o in outcomes if not isinstance(o, BaseException)]
    assert stopped and answered and len(stopped) + len(answered) == 60
    one_call = max(
        worst_case_cost(client.model, prompt_token_bound(client.prompt_texts(client.with_model(r))), 40, client.prices)
        for r in requests
    )
    spent = ledger.total_cost()
    assert spent <= 0.2 + one_call and spent == pytest.approx(budget.spent_usd)
    assert budget.reserved_usd == pytest.approx(0.0)
    assert f"${spent:.4f} spent" in str(stopped[0])  # the true spend once in-flight calls ended


def test_an_unpriced_model_refuses_a_budget(fake_llm_server) -> None:
    base = fake_llm_server.openai_base_url
    with pytest.raises(UnpricedModelError, match="--prices"):
        make_llm_client("openai:o3-pro", base_url=base, budget=Budget(1.0))
    with pytest.raises(UnpricedModelError):
        make_llm_client("openai-compatible:my-llama", base_url=base, budget=Budget(1.0))
    make_llm_client("openai:o3-pro", base_url=base, budget=Budget(1.0), prices={"o3-pro": {"input": 20, "output": 80}})
    make_llm_client("openai:o3-pro", base_url=base)  # no budget: nothing to keep


# ---- fail fast, structured-output fallback ----------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_requests_refused_from_the_start_stop_the_stage(fake_llm_server, api) -> None:
    fake_llm_server.add_faults(*[Fault(status=400)] * 3)
    client = client_for(fake_llm_server, api)
    for _ in range(2):
        with pytest.raises(LLMCallError):
            run(client.complete(ask("q")))
    with pytest.raises(LLMUnreachableError, match="first 3 requests were refused"):
        run(client.complete(ask("q")))
    with pytest.raises(LLMUnreachableError):
        run(client.complete(ask("other")))
    assert fake_llm_server.request_count == 3


def test_a_refusal_after_a_success_is_one_failed_request(fake_llm_server) -> None:
    client = client_for(fake_llm_server, "openai")
    run(client.complete(ask("fine")))
    fake_llm_server.add_faults(*[Fault(status=400)] * 4)
    for i in range(4):
        with pytest.raises(LLMCallError):
            run(client.complete(ask(f"q{i}")))


def test_a_server_without_response_format_gets_json_in_words(fake_llm_server) -> None:
    schema = {"type": "object", "properties": {"answers": {"type": "array"}}, "required": ["answers"]}
    fake_llm_server.responder = lambda body, wire: json.dumps({"answers": [1, 0]})
    refusal = "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."
    fake_llm_server.add_faults(Fault(status=400, message=refusal))
    client = client_for(fake_llm_server, "openai")
    assert json.loads(run(client.complete(ask("one", json_schema=schema))).text) == {"answers": [1, 0]}
    run(client.complete(ask("two", json_schema=schema)))
    sent = [r.body for r in fake_llm_server.requests]
    assert "response_format" in sent[0] and all("response_format" not in body for body in sent[1:])
    assert len(sent) == 3  # the refused one, its plain retry, then plain from the start
    assert sent[2]["messages"][-1] == {
        "role": "system",
        "content": "Reply with JSON only, no other text, matching this JSON schema: " + json.dumps(schema),
    }


def test_anthropic_base_url_with_or_without_v1(fake_llm_server) -> None:
    for base in (fake_llm_server.url, fake_llm_server.url + "/v1", fake_llm_server.url + "/v1/"):
        client = make_llm_client(SPECS["anthropic"], base_url=base, retry=FAST)
        assert run(client.complete(ask("hi"))).text == "echo: hi"


# ---- lean logprobs -----------------------------------------------------------------------------


def test_only_line_end_numbers_are_kept_from_logprobs(fake_llm_server, ledger) -> None:
    alternatives = [(str(n), math.log(0.05)) for n in range(11)] + [(f"x{k}", -9.0) for k in range(9)]
    lines = [(str(i), "\t", f'" w{i}"', "\t", str(i % 11), "\n") for i in range(40)]
    tokens = [FakeToken(piece, -0.1, alternatives if k == 4 else [(piece, -0.1)] * 20)
              for line in lines for k, piece in enumerate(line)]  # fmt: skip
    text = "".join(t.token for t in tokens) + ', "bytes": [1, 2] stays text'
    tokens.append(FakeToken(', "bytes": [1, 2] stays text', -0.1, [("x", -0.1)] * 20))
    fake_llm_server.responder = lambda body, wire: FakeReply(text=text, logprobs=tokens)
    response = run(
        client_for(fake_llm_server, "openai", ledger=ledger).complete(ask("sim", logprobs=True, top_logprobs=20))
    )
    assert response.text == text  # the cut-out "bytes" fields are never message text
    assert len(response.line_end_numbers) == 40  # the numbers ending lines; not the line indices
    assert set(response.line_end_numbers.values()) == {5.0}  # uniform over 0..10
    (size,) = ledger.db.execute("SELECT LENGTH(response) FROM llm_cache").fetchone()
    assert size <= 5000


LOOKUP = ToolSpec(
    name="lookup", description="Find a word.", parameters={"type": "object", "properties": {"word": {"type": "string"}}}
)


@pytest.mark.parametrize("api", APIS)
def test_tool_calls_round_trip_in_both_wire_formats_and_replay_from_the_cache(api, ledger) -> None:
    def responder(body: dict, wire: str) -> FakeReply:
        answered = any(m["role"] == "assistant" for m in body["messages"])
        return FakeReply(
            text="done" if answered else "", tool_calls=None if answered else [("lookup", {"word": "cat"})]
        )

    with FakeLLMServer(responder=responder) as server:
        client = client_for(server, api, ledger=ledger)
        first = ChatRequest(messages=[ChatMessage(role="user", content="go")], tools=[LOOKUP])
        called = run(client.complete(first))
        assert [(c.name, c.arguments) for c in called.tool_calls] == [("lookup", {"word": "cat"})]
        then = first.model_copy(update={"messages": [
            *first.messages,
            ChatMessage(role="assistant", content=called.text, tool_calls=called.tool_calls),
            ChatMessage(role="tool", tool_call_id=called.tool_calls[0].id, content="a small animal"),
        ]})  # fmt: skip
        assert run(client.complete(then)).text == "done"
        assert run(client.complete(first)).tool_calls == called.tool_calls  # from the cache, calls intact
        bodies = [r.body for r in server.requests]
    assert len(bodies) == 2
    call_id = called.tool_calls[0].id
    if api == "openai":
        assert bodies[0]["tools"] == [{"type": "function", "function": LOOKUP.model_dump()}]
        assert bodies[1]["messages"][1]["tool_calls"][0]["function"] == {
            "name": "lookup",
            "arguments": '{"word": "cat"}',
        }
        assert bodies[1]["messages"][2] == {"role": "tool", "tool_call_id": call_id, "content": "a small animal"}
    else:
        assert bodies[0]["tools"] == [
            {"name": "lookup", "description": "Find a word.", "input_schema": LOOKUP.parameters}
        ]
        assert bodies[1]["messages"][1]["content"] == [
            {"type": "tool_use", "id": call_id, "name": "lookup", "input": {"word": "cat"}}
        ]
        assert bodies[1]["messages"][2] == {
            "role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "a small animal"}]
        }  # fmt: skip


def test_plain_requests_keep_the_cache_keys_they_had_before_tool_calling() -> None:
    """Caches filled before tools existed must still answer: the tool fields are left out when unset."""
    plain = ChatRequest(messages=[ChatMessage(role="system", content="s"), ChatMessage(role="user", content="q")],
                        json_schema={"type": "object"})  # fmt: skip
    assert request_cache_key("openai", plain) == "8f23c9076338ec2c478fd0b42c4bfe785b144687c1d08dce65cd39a4234431a7"


def test_malformed_tool_conversations_are_refused_when_built() -> None:
    with pytest.raises(ValueError, match="tool_call_id"):
        ChatMessage(role="tool", content="result without its call")
    with pytest.raises(ValueError, match="not both"):
        ask("q", tools=[LOOKUP], json_schema={"type": "object"})
