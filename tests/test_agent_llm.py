"""The LLM agent driver end to end against the local fake server (real HTTP through the official SDKs
and the project's LLM client), in both wire formats: tool calls, stored traces, resuming without paying
twice (after a failed call and after kill -9), the run-wide cost cap, and its prompt pinned."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autointerp.agent.runner import plant
from autointerp.cli import main
from autointerp.prompts import load_prompt
from autointerp.store import open_store
from autointerp.testing.fake_llm_server import FakeLLMServer, FakeReply, Fault
from sae.harvest import HarvestConfig

FINAL = 'fires on "None" when it repeats (exact tokens)'
SCRIPT = [
    ("run_texts", {"texts": ["x = None\ny = None", "def f(a):"]}),
    ("search_corpus", {"pattern": "def ", "limit": 2}),
    ("edit_window", {"window": 0, "op": "insert", "position": 3, "text": " None"}),
    ("revise", {"explanation": FINAL, "reason": "the second None fired, the first did not"}),
    ("finish", {"explanation": FINAL}),
]


def scripted(body: dict, api: str) -> FakeReply:
    """One scripted tool call per turn, chosen by how many assistant turns the request repeats."""
    turn = sum(1 for m in body["messages"] if m["role"] == "assistant")
    return FakeReply(text="", tool_calls=[SCRIPT[turn]], prompt_tokens=1000, completion_tokens=50)


@pytest.fixture(scope="module")
def planted_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("planted") / "catalog.db"
    with open_store(db) as store:
        plant(store, 2, 0, HarvestConfig(n_tokens=8192, hard_negative_tokens=8192))
    return db


@pytest.fixture
def db(planted_db: Path, tmp_path: Path, monkeypatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    copy = tmp_path / "catalog.db"
    shutil.copy(planted_db, copy)
    return str(copy)


def agent_args(db: str, server: FakeLLMServer, driver: str, *extra: str) -> list[str]:
    url = server.anthropic_base_url if driver.startswith("anthropic") else server.openai_base_url
    return ["agent", "--db", db, "--kinds", "feature", "--units", "all", "--budget", "5", "--driver", driver,
            "--base-url", url, *extra]  # fmt: skip


def agent(db: str, server: FakeLLMServer, driver: str, *extra: str) -> int:
    return main(agent_args(db, server, driver, *extra))


def turns(body: dict) -> int:
    return sum(1 for m in body["messages"] if m["role"] == "assistant")


def paid_calls(db: str) -> list[tuple[str, float]]:
    """(run id, cost) of every answered call in the catalog's call log."""
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT run_id, cost_usd FROM llm_calls WHERE status = 'ok'").fetchall()


@pytest.mark.parametrize("driver", ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"])
def test_llm_driver_calls_tools_in_both_wire_formats_and_stores_the_trace(db, driver, capsys):
    with FakeLLMServer(responder=scripted) as server:
        assert agent(db, server, driver) == 0
        bodies = [r.body for r in server.requests]
    assert json.loads(capsys.readouterr().out)["done"] == 2
    assert len(bodies) == 2 * len(SCRIPT)  # the two conversations ran side by side (--concurrency 4)
    last = max(bodies, key=turns)
    if driver.startswith("openai"):
        assert {t["function"]["name"] for t in last["tools"]} == {
            "run_texts",
            "search_corpus",
            "edit_window",
            "revise",
            "finish",
        }
        results = [m for m in last["messages"] if m["role"] == "tool"]
    else:
        assert {t["name"] for t in last["tools"]} == {"run_texts", "search_corpus", "edit_window", "revise", "finish"}
        results = [
            b
            for m in last["messages"]
            if isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") == "tool_result"
        ]
    assert len(results) == len(SCRIPT) - 1
    activations = json.loads(results[0]["content"])
    assert [pair[0] for pair in activations[0]][:2] == ["x", " ="]  # tokens with the unit's activations
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT final, calls FROM agent_traces ORDER BY unit").fetchall()
        assert rows == [(FINAL, 3), (FINAL, 3)]  # two texts + one edited window
        reasons = conn.execute("SELECT reason FROM agent_revisions").fetchall()
        assert ("the second None fired, the first did not",) in reasons
        texts = conn.execute(f"SELECT text FROM explanations WHERE explainer = 'agent-{driver}'").fetchall()
        assert texts == [(FINAL,), (FINAL,)]
        run = conn.execute("SELECT run_id FROM runs WHERE command = 'agent'").fetchall()
    # every reply went through the project's client: priced and logged under this run, and cached
    calls = paid_calls(db)
    assert len(calls) == 2 * len(SCRIPT) and {r for r, _ in calls} == {run[0][0]} and all(c > 0 for _, c in calls)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM agent_traces")  # the units are to be done again: the same conversations
    with FakeLLMServer(responder=scripted) as server:
        assert agent(db, server, driver) == 0
        assert server.request_count == 0


@pytest.mark.parametrize("driver", ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"])
def test_a_failed_call_fails_its_unit_and_a_rerun_pays_only_for_the_rest(db, driver, capsys):
    with FakeLLMServer(responder=scripted) as server:
        server.add_faults(Fault(), Fault(), Fault(status=400))  # the third request fails (400: no retry)
        assert agent(db, server, driver) == 2
        out, err = capsys.readouterr()
        assert json.loads(out)["done"] == 1 and "run again to resume" in err  # the other unit finished
        first = server.request_count
        server.reset()
        assert agent(db, server, driver) == 0
        second = server.request_count
    # the failed unit's first reply comes from the cache: only the rest of its conversation is sent
    assert second == len(SCRIPT) - 1
    assert first + second == 2 * len(SCRIPT) + 1  # every turn paid once, plus the refused request
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM agent_traces").fetchone()[0] == 2


def test_max_cost_caps_the_whole_run_counting_earlier_spend(db, capsys):
    one_turn = 1000 * 0.15e-6 + 50 * 0.60e-6  # gpt-4o-mini at its list price, as the server reports usage
    cap = 11 * one_turn  # each call first reserves its worst case (800 output tokens, its prompt overcounted)
    with FakeLLMServer(responder=scripted) as server:
        assert agent(db, server, "openai:gpt-4o-mini", "--max-cost", str(cap), "--concurrency", "1") == 0
        capped = server.request_count
        out, err = capsys.readouterr()
        assert "stopped early: LLM budget of" in err
        report = json.loads(out)
        assert report["done"] == 1 and report["stopped"] and report["cost_usd"] == pytest.approx(capped * one_turn)
        spent = sum(c for _, c in paid_calls(db))
        assert 0 < spent <= cap and capped < 2 * len(SCRIPT)
        with sqlite3.connect(db) as conn:  # the finished unit is kept whole; the other has no trace yet
            assert conn.execute("SELECT final FROM agent_traces").fetchall() == [(FINAL,)]
        server.reset()
        # the same cap again: what the first run spent counts, so nothing more is sent
        assert agent(db, server, "openai:gpt-4o-mini", "--max-cost", str(cap)) == 0
        assert server.request_count == 0 and json.loads(capsys.readouterr().out)["done"] == 0
        # no cap: the unfinished conversation resumes from its cached replies
        assert agent(db, server, "openai:gpt-4o-mini") == 0
        assert server.request_count == 2 * len(SCRIPT) - capped


def test_the_agent_prompt_is_pinned():
    prompt = load_prompt("agent")
    assert prompt.version == "agent_v1"
    assert prompt.render("user", explanation="E", examples="X", budget="7") == (
        "Starting explanation: E\n\nTop examples (tokens in JSON quotes, each with its activation):\nX\n\n"
        "You have 7 subject-model calls. Test the explanation, then call finish."
    )
    system = prompt.render("system")
    assert system.startswith("You are an interpretability researcher studying one unit")
    assert system.endswith('(for example "after X", "inside a string", "at the start of a line", "but not after Y").')
    # the whole system text, pinned: edit prompts/agent_v1.txt only as a new version
    assert hashlib.sha256(system.encode()).hexdigest()[:16] == "18ab9fdfac394e28"
    assert prompt.digest == "e9ff28bd8c47"


def test_kill_9_mid_run_then_resume_pays_only_for_the_rest(db, tmp_path):
    """A real SIGKILL while the third reply is on its way; the rerun resends only what was not paid."""
    with FakeLLMServer(responder=scripted) as server:
        server.add_faults(Fault(), Fault(), Fault(delay_s=60))  # the third request hangs until the kill
        args = agent_args(db, server, "openai:gpt-4o-mini", "--concurrency", "1")  # the third request is unit 0's
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        proc = subprocess.Popen([sys.executable, "-m", "autointerp.cli", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 120
        while server.request_count < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert server.request_count == 3
        proc.kill()
        proc.wait()
        server.reset()
        assert main(args) == 0
        assert server.request_count == 2 * len(SCRIPT) - 2


def test_bad_tool_calls_get_errors_the_model_can_read_and_the_unit_goes_on(db, capsys):
    bad = [("run_texts", {}), ("guess", {}), ("search_corpus", {"pattern": "("}), ("finish", {"explanation": FINAL})]

    def responder(body: dict, api: str) -> FakeReply:
        return FakeReply(text="", tool_calls=[bad[turns(body)]], prompt_tokens=1000, completion_tokens=50)

    with FakeLLMServer(responder=responder) as server:
        assert agent(db, server, "openai:gpt-4o-mini", "--units", "list:0") == 0
        last = max((r.body for r in server.requests), key=turns)
    errors = [json.loads(m["content"])["error"] for m in last["messages"] if m["role"] == "tool"]
    assert errors[0] == "missing argument 'texts'" and errors[1] == "unknown tool 'guess'"
    assert errors[2]  # the regular expression's own complaint
    assert json.loads(capsys.readouterr().out)["done"] == 1
