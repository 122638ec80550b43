"""Both backends through the official SDKs to a real local HTTP server: wire formats, retries,
error handling, the response cache, the budget, concurrency and key hygiene."""

from __future__ import annotations

import asyncio
import json
import logging
import math

import pytest

from autointerp.errors import UserError
from autointerp.explainers.llm import LLMExplainer
from autointerp.llm import (
    Budget,
    BudgetExceeded,
    ChatMessage,
    ChatRequest,
    LLMAccessError,
    LLMCallError,
    LLMSpecError,
    LLMUnreachableError,
    MalformedResponseError,
    MissingAPIKeyError,
    RetryPolicy,
    make_llm_client,
)
from autointerp.llm.client import closing
from autointerp.llm.openai_backend import REASONING_TOKENS
from autointerp.simulators.offline import OfflineSimulator
from autointerp.store import open_store
from autointerp.testing.fake_llm_server import FakeLLMServer, FakeReply, FakeToken, Fault

FAST = RetryPolicy(max_attempts=3, initial_wait_s=0.001, max_wait_s=0.01, jitter_s=0.001)
SECRET = "sk-test-SECRET-0123456789abcdef"


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET + "-ant")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def user(text: str, system: str | None = None, **params) -> ChatRequest:
    messages = [ChatMessage(role="system", content=system)] if system else []
    return ChatRequest(messages=[*messages, ChatMessage(role="user", content=text)], **params)


def openai_client(server: FakeLLMServer, **kwargs):
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("timeout", 5)
    return make_llm_client("openai:gpt-4o-mini", base_url=server.openai_base_url, **kwargs)


def anthropic_client(server: FakeLLMServer, **kwargs):
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("timeout", 5)
    return make_llm_client("anthropic:claude-haiku-4-5", base_url=server.anthropic_base_url, **kwargs)


def run(coro):
    return asyncio.run(coro)


# ---- wire formats ----------------------------------------------------------------------------


def test_openai_text_logprobs_usage_and_cost(fake_llm_server: FakeLLMServer) -> None:
    fake_llm_server.responder = lambda body, api: FakeReply(
        text="7",
        logprobs=[FakeToken("7", -0.1, [("7", -0.1), ("8", -2.5), ("0", -4.0)])],
        prompt_tokens=1000,
        completion_tokens=1,
    )
    client = openai_client(fake_llm_server)
    response = run(client.complete(user("predict", system="be terse", logprobs=True, top_logprobs=2)))

    assert client.supports_logprobs and client.name == "openai:gpt-4o-mini"
    assert response.text == "7" and not response.cached
    p7, p8 = math.exp(-0.1), math.exp(-2.5)  # top_logprobs=2: the "0" alternative is not sent
    assert response.line_end_numbers == {1: pytest.approx((7 * p7 + 8 * p8) / (p7 + p8), abs=1e-4)}
    assert (response.prompt_tokens, response.completion_tokens) == (1000, 1)
    assert response.cost_usd == pytest.approx((1000 * 0.15 + 1 * 0.60) / 1e6)
    sent = fake_llm_server.requests[0].body
    assert sent["model"] == "gpt-4o-mini" and sent["logprobs"] is True and sent["top_logprobs"] == 2
    assert sent["messages"][0] == {"role": "system", "content": "be terse"}
    assert sent["max_completion_tokens"] == 512 and sent["temperature"] == 0.0


def test_openai_json_schema_becomes_response_format(fake_llm_server: FakeLLMServer) -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    fake_llm_server.responder = lambda body, api: json.dumps({"label": "commas"})
    response = run(openai_client(fake_llm_server).complete(user("label it", json_schema=schema)))
    assert json.loads(response.text) == {"label": "commas"}
    sent = fake_llm_server.requests[0].body
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == schema
    assert "logprobs" not in sent


def test_reasoning_models_get_no_logprobs_or_temperature_and_room_to_reason(fake_llm_server: FakeLLMServer) -> None:
    client = make_llm_client("openai:o4-mini", base_url=fake_llm_server.openai_base_url, retry=FAST)
    assert not client.supports_logprobs
    response = run(client.complete(user("hi", logprobs=True, top_logprobs=5, max_tokens=160)))
    assert response.line_end_numbers is None
    sent = fake_llm_server.requests[0].body
    assert "logprobs" not in sent and "temperature" not in sent
    assert sent["max_completion_tokens"] == 160 + REASONING_TOKENS


def test_openai_compatible_server_needs_no_key(fake_llm_server: FakeLLMServer, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    client = make_llm_client("openai-compatible:llama3", base_url=fake_llm_server.openai_base_url, retry=FAST)
    response = run(client.complete(user("hello")))
    assert response.text == "echo: hello" and response.cost_usd == 0.0
    sent = fake_llm_server.requests[0]
    assert sent.body["max_tokens"] == 512 and "max_completion_tokens" not in sent.body
    assert client.name == "openai-compatible:llama3"


def test_anthropic_system_prompt_text_and_cost(fake_llm_server: FakeLLMServer) -> None:
    fake_llm_server.responder = lambda body, api: FakeReply(
        "a feature for commas", prompt_tokens=200, completion_tokens=5
    )
    client = anthropic_client(fake_llm_server)
    response = run(client.complete(user("explain", system="You explain neurons.", logprobs=True)))

    assert not client.supports_logprobs and response.line_end_numbers is None
    assert response.text == "a feature for commas"
    assert response.cost_usd == pytest.approx((200 * 1.0 + 5 * 5.0) / 1e6)
    sent = fake_llm_server.requests[0]
    assert sent.api == "anthropic"
    assert sent.body["system"] == "You explain neurons."
    assert sent.body["messages"] == [{"role": "user", "content": "explain"}]
    assert sent.body["model"] == "claude-haiku-4-5" and sent.body["max_tokens"] == 512


def test_anthropic_json_schema_through_forced_tool(fake_llm_server: FakeLLMServer) -> None:
    schema = {"type": "object", "properties": {"activations": {"type": "array"}}}
    fake_llm_server.responder = lambda body, api: json.dumps({"activations": [0, 10, 3]})
    response = run(anthropic_client(fake_llm_server).complete(user("simulate", json_schema=schema)))
    assert json.loads(response.text) == {"activations": [0, 10, 3]}
    sent = fake_llm_server.requests[0].body
    assert sent["tools"][0]["input_schema"] == schema
    assert sent["tool_choice"] == {"type": "tool", "name": sent["tools"][0]["name"]}


# ---- retries and errors ----------------------------------------------------------------------


@pytest.mark.parametrize("make_client", [openai_client, anthropic_client])
def test_429_waits_as_long_as_retry_after_says(fake_llm_server, make_client, caplog) -> None:
    fake_llm_server.add_faults(Fault(status=429, retry_after_ms="80"), Fault(status=429, retry_after="0.03"))
    with caplog.at_level(logging.WARNING, logger="autointerp.llm"):
        response = run(make_client(fake_llm_server).complete(user("hi")))
    assert response.text == "echo: hi"
    assert fake_llm_server.request_count == 3
    waits = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert "HTTP 429, retry 1/2 in 0.080 s" in waits[0]
    assert "HTTP 429, retry 2/2 in 0.030 s" in waits[1]


@pytest.mark.parametrize(
    "fault",
    [Fault(status=500), Fault(status=503), Fault(status=529), Fault(truncate=True), Fault(body="{not json")],
    ids=["500", "503", "529-overloaded", "truncated", "malformed"],
)
@pytest.mark.parametrize("make_client", [openai_client, anthropic_client])
def test_transient_failures_are_retried(fake_llm_server, make_client, fault, ledger) -> None:
    fake_llm_server.add_faults(fault)
    response = run(make_client(fake_llm_server, ledger=ledger).complete(user("hi")))
    assert response.text == "echo: hi"
    assert fake_llm_server.request_count == 2
    assert [c["status"] for c in ledger.llm_calls()] == ["error", "ok"]
    assert [c["attempt"] for c in ledger.llm_calls()] == [1, 2]


@pytest.mark.parametrize("make_client", [openai_client, anthropic_client])
def test_timeout_is_retried_and_logged_as_a_timeout(fake_llm_server, make_client, ledger) -> None:
    fake_llm_server.add_faults(Fault(delay_s=2.0))
    response = run(make_client(fake_llm_server, timeout=0.2, ledger=ledger).complete(user("hi")))
    assert response.text == "echo: hi"
    assert fake_llm_server.request_count == 2
    assert [c["error"].split(":")[0] for c in ledger.llm_calls() if c["error"]] == ["APITimeoutError"]


@pytest.mark.parametrize("make_client", [openai_client, anthropic_client])
def test_bad_request_fails_at_once_without_retry(fake_llm_server, make_client) -> None:
    fake_llm_server.add_faults(Fault(status=400))
    with pytest.raises(LLMCallError) as info:
        run(make_client(fake_llm_server).complete(user("hi")))
    assert info.value.status_code == 400 and not isinstance(info.value, UserError)
    assert fake_llm_server.request_count == 1


@pytest.mark.parametrize("status", [401, 403, 404])
@pytest.mark.parametrize("make_client", [openai_client, anthropic_client])
def test_refused_key_or_model_stops_the_stage(fake_llm_server, make_client, status) -> None:
    fake_llm_server.add_faults(Fault(status=status))
    client = make_client(fake_llm_server)
    with pytest.raises(LLMAccessError) as info:
        run(client.complete(user("hi")))
    assert isinstance(info.value, UserError) and not isinstance(info.value, LLMCallError)
    assert fake_llm_server.request_count == 1
    if status != 404:
        assert client.api_key_env in str(info.value)


def test_persistent_5xx_gives_up_after_max_attempts(fake_llm_server, ledger) -> None:
    fake_llm_server.add_faults(*[Fault(status=500)] * 5)
    with pytest.raises(LLMCallError, match="InternalServerError") as info:
        run(openai_client(fake_llm_server, ledger=ledger).complete(user("hi")))
    assert info.value.status_code == 500
    assert fake_llm_server.request_count == FAST.max_attempts
    assert [c["http_status"] for c in ledger.llm_calls()] == [500, 500, 500]


@pytest.mark.parametrize("body", ["{not json", "", '{"id": 1}'], ids=["bad-json", "empty", "missing-fields"])
@pytest.mark.parametrize("make_client", [openai_client, anthropic_client])
def test_malformed_bodies_end_as_an_error_not_a_crash(fake_llm_server, make_client, body) -> None:
    fake_llm_server.add_faults(*[Fault(body=body)] * FAST.max_attempts)
    with pytest.raises(MalformedResponseError):
        run(make_client(fake_llm_server).complete(user("hi")))
    assert fake_llm_server.request_count == FAST.max_attempts


@pytest.mark.parametrize("make_client", [openai_client, anthropic_client])
def test_a_dead_server_stops_the_stage_after_the_first_call(ledger, make_client) -> None:
    """Reported as a connection error, not as the timeout that openai's copy of the aiohttp transport made of it."""
    with FakeLLMServer() as server:
        client = make_client(server, ledger=ledger)
    with pytest.raises(LLMUnreachableError, match="cannot reach .*APIConnectionError"):
        run(client.complete(user("hi")))
    assert len(ledger.llm_calls()) == FAST.max_attempts
    with pytest.raises(LLMUnreachableError):  # every later call fails at once, without trying
        run(client.complete(user("another")))
    assert len(ledger.llm_calls()) == FAST.max_attempts


# ---- cache, budget, concurrency --------------------------------------------------------------


def test_second_identical_run_makes_no_requests(fake_llm_server, ledger) -> None:
    requests = [user(f"unit {i}", logprobs=True, top_logprobs=3) for i in range(4)]

    async def one_run():
        client = openai_client(fake_llm_server, ledger=ledger)
        return await asyncio.gather(*(client.complete(r) for r in requests))

    first = run(one_run())
    assert fake_llm_server.request_count == 4
    second = run(one_run())
    assert fake_llm_server.request_count == 4  # all from the cache
    assert all(r.cached and r.cost_usd == 0 for r in second)
    assert [r.text for r in second] == [r.text for r in first]
    assert [r.line_end_numbers for r in second] == [r.line_end_numbers for r in first]

    run(openai_client(fake_llm_server, ledger=ledger).complete(user("unit 0", temperature=1.0)))
    assert fake_llm_server.request_count == 5  # another parameter: another request
    statuses = [c["status"] for c in ledger.llm_calls()]
    assert statuses.count("ok") == 5 and statuses.count("cached") == 4


def test_budget_stops_before_the_next_call(fake_llm_server, ledger) -> None:
    fake_llm_server.responder = lambda body, api: FakeReply("x", prompt_tokens=1_000_000, completion_tokens=0)
    budget = Budget(max_cost_usd=1.0)
    client = openai_client(
        fake_llm_server, ledger=ledger, budget=budget, prices={"gpt-4o-mini": {"input": 0.6, "output": 0.0}}
    )
    run(client.complete(user("a")))  # $0.60
    run(client.complete(user("b")))  # $1.20: over budget, but it had started under it
    with pytest.raises(BudgetExceeded, match="budget of \\$1.0000 is spent") as info:
        run(client.complete(user("c")))
    assert isinstance(info.value, UserError)
    assert fake_llm_server.request_count == 2
    assert budget.spent_usd == pytest.approx(1.2) and ledger.total_cost() == pytest.approx(1.2)
    assert run(client.complete(user("a"))).cached  # finished work still served


def test_concurrency_is_bounded_per_client(fake_llm_server) -> None:
    fake_llm_server.latency_s = 0.05
    client = openai_client(fake_llm_server, concurrency=2)

    async def many():
        return await asyncio.gather(*(client.complete(user(f"q{i}")) for i in range(8)))

    assert len(run(many())) == 8
    assert fake_llm_server.max_in_flight == 2


def test_client_survives_several_event_loops(fake_llm_server) -> None:
    client = anthropic_client(fake_llm_server)
    assert run(client.complete(user("one"))).text == "echo: one"
    assert run(client.complete(user("two"))).text == "echo: two"


# ---- configuration and keys ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "variable"), [("openai:gpt-4o", "OPENAI_API_KEY"), ("anthropic:claude-haiku-4-5", "ANTHROPIC_API_KEY")]
)
def test_missing_key_names_the_variable(monkeypatch, spec, variable) -> None:
    monkeypatch.delenv(variable)
    with pytest.raises(MissingAPIKeyError, match=variable) as info:
        make_llm_client(spec)
    assert isinstance(info.value, UserError)


@pytest.mark.parametrize("spec", ["gpt-4o", "openai:", "azure:gpt-4o", ""])
def test_bad_spec_is_a_user_error(spec) -> None:
    with pytest.raises(LLMSpecError, match="BACKEND:MODEL"):
        make_llm_client(spec)


def test_openai_compatible_needs_a_base_url() -> None:
    with pytest.raises(LLMSpecError, match="base URL"):
        make_llm_client("openai-compatible:llama3")


def test_key_never_reaches_store_logs_or_errors(fake_llm_server, tmp_path, caplog) -> None:
    path = tmp_path / "run.db"
    fake_llm_server.add_faults(Fault(status=500), Fault(status=401))
    with caplog.at_level(logging.DEBUG), open_store(path) as store:
        client = openai_client(fake_llm_server, ledger=store.ledger)
        with pytest.raises(LLMAccessError) as info:
            run(client.complete(user("hi")))
        run(client.complete(user("hello")))
        run(client.complete(user("hello")))  # cached
        assert SECRET not in repr(client)
        # the server really received it and echoed it in the 401 body
        assert SECRET in fake_llm_server.requests[1].headers.get("authorization", "")
    assert "[REDACTED]" in str(info.value) and SECRET not in str(info.value)
    assert "SECRET" not in caplog.text
    for file in tmp_path.iterdir():  # run.db, and -wal / -shm if still present
        assert b"SECRET" not in file.read_bytes(), file.name


@pytest.mark.parametrize("spec", ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"])
def test_credentials_in_the_base_url_go_as_basic_auth(fake_llm_server, spec) -> None:
    """A server behind a password-protected proxy: the URL's user:password (percent-decoded) go as
    Basic auth in place of the key, not as part of the address."""
    url = fake_llm_server.openai_base_url if spec.startswith("openai") else fake_llm_server.anthropic_base_url
    url = url.replace("http://", "http://probe:p%40ss@")
    run(make_llm_client(spec, base_url=url, retry=FAST, timeout=5).complete(user("hi")))
    assert fake_llm_server.requests[0].headers["authorization"] == "Basic cHJvYmU6cEBzcw=="  # probe:p@ss


async def _call_keeping_sdk(client, opened: list) -> None:
    """One call; the SDK client of this loop that made it is appended to `opened`."""
    await client.complete(user("hi"))
    opened.append((await client._for_loop()).sdk)


@pytest.mark.parametrize("make_client", [openai_client, anthropic_client])
def test_a_stage_run_with_closing_closes_its_sdk_client(fake_llm_server, make_client) -> None:
    client = make_client(fake_llm_server)
    opened: list = []

    async def stage() -> None:
        await closing(_call_keeping_sdk(client, opened), LLMExplainer(client), OfflineSimulator())
        # still in the loop: closed by `closing`, not by the loop's end (see the next test)
        assert opened[0].is_closed()

    run(stage())
    assert opened[0].is_closed()


@pytest.mark.parametrize("make_client", [openai_client, anthropic_client])
def test_a_client_nobody_closes_is_closed_when_asyncio_run_ends(fake_llm_server, make_client) -> None:
    """`asyncio.run(client.complete(...))` and no close: the loop's end closes the connections."""
    client = make_client(fake_llm_server)
    opened: list = []
    asyncio.run(_call_keeping_sdk(client, opened))
    assert opened[0].is_closed()
    asyncio.run(_call_keeping_sdk(client, opened))  # a new loop gets a new SDK client, closed in turn
    assert opened[1] is not opened[0] and opened[1].is_closed()
