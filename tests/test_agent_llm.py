"""The LLM agent driver end to end against the local fake server, in both wire formats: tool calls,
stored traces, resuming without paying twice, the cost cap, and its prompt pinned."""

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


def agent(db: str, server: FakeLLMServer, driver: str, *extra: str) -> int:
    url = server.anthropic_base_url if driver.startswith("anthropic") else server.openai_base_url
    return main(["agent", "--db", db, "--kinds", "feature", "--units", "all", "--budget", "5", "--driver", driver,
                 "--base-url", url, *extra])  # fmt: skip


@pytest.mark.parametrize("driver", ["openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest"])
def test_llm_driver_calls_tools_in_both_wire_formats_and_stores_the_trace(db, driver, capsys):
    with FakeLLMServer(responder=scripted) as server:
        assert agent(db, server, driver) == 0
        bodies = [r.body for r in server.requests]
    assert json.loads(capsys.readouterr().out)["done"] == 2
    assert len(bodies) == 2 * len(SCRIPT)
    last = bodies[len(SCRIPT) - 1]
    if driver.startswith("openai"):
        assert {t["function"]["name"] for t in last["tools"]} == {"run_texts", "search_corpus", "edit_window", "revise", "finish"}
        results = [m for m in last["messages"] if m["role"] == "tool"]
    else:
        assert {t["name"] for t in last["tools"]} == {"run_texts", "search_corpus", "edit_window", "revise", "finish"}
        results = [b for m in last["messages"] if isinstance(m["content"], list) for b in m["content"] if b.get("type") == "tool_result"]
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


@pytest.mark.parametrize("driver", ["openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest"])
def test_a_failed_run_resumes_without_paying_twice(db, driver, capsys):
    with FakeLLMServer(responder=scripted) as server:
        server.add_faults(Fault(), Fault(), Fault(status=400))  # the third request fails (400: no retry)
        assert agent(db, server, driver) == 2
        assert "run again to resume" in capsys.readouterr().err
        first = server.request_count
        server.reset()
        assert agent(db, server, driver) == 0
        # the two paid replies come from the catalog: only the rest of the conversation is sent
        assert server.request_count == 2 * len(SCRIPT) - 2
    assert first == 3


def test_max_cost_stops_a_unit_after_the_reply_that_reaches_it(db, capsys):
    with FakeLLMServer(responder=scripted) as server:
        assert agent(db, server, "openai:gpt-4o-mini", "--max-cost", "0.0001") == 0
        assert server.request_count == 2  # one reply per unit, then the cap
    with sqlite3.connect(db) as conn:
        finals = [r[0] for r in conn.execute("SELECT final, initial FROM agent_traces")]
        initials = [r[1] for r in conn.execute("SELECT final, initial FROM agent_traces")]
    assert finals == initials  # stopped before any revision


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
        args = ["agent", "--db", db, "--kinds", "feature", "--units", "all", "--budget", "5",
                "--driver", "openai:gpt-4o-mini", "--base-url", server.openai_base_url]  # fmt: skip
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
