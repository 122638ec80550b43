"""`explain --batch` and `score --batch` through the official SDKs against the fake server's batch
endpoints, in both wire formats: the same records as the live path at half the cost, failed and
expired requests sent again (only those), a bounded number of tries, resume after a stop or a kill -9
without resubmitting, the budget cap kept before anything is sent, and no key in the catalog."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from autointerp import cli
from autointerp.explainers import LLMExplainer
from autointerp.llm import ChatRequest, make_llm_client
from autointerp.llm.pricing import BATCH_FACTOR
from autointerp.local_workers import load_unit
from autointerp.store import open_store
from autointerp.testing.fake_llm_server import FakeLLMServer
from autointerp.testing.planted import SimulatingResponder, planted_harvest, planted_units

SOURCE = "planted/test"
KEYS = {"OPENAI_API_KEY": "sk-batch-secret-0001", "ANTHROPIC_API_KEY": "ant-batch-secret-0002"}
MODELS = {"openai": "openai:gpt-4o-mini", "anthropic": "anthropic:claude-haiku-4-5"}
APIS = list(MODELS)
N_UNITS = 4


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def server(fake_llm_server: FakeLLMServer) -> FakeLLMServer:
    fake_llm_server.responder = SimulatingResponder()
    return fake_llm_server


def catalog(path: Path, n_units: int = N_UNITS) -> str:
    with open_store(path) as store:
        store.put_source(SOURCE, {"planted": True})
        store.put_units(SOURCE, [planted_harvest(u) for u in planted_units(n_units)])
    return str(path)


def label_args(command: str, db: str, server: FakeLLMServer, api: str, *extra: str) -> list[str]:
    model = MODELS[api]
    base_url = server.openai_base_url if api == "openai" else server.anthropic_base_url
    roles = ["--explainer", model] + (["--simulator", model] if command == "score" else [])
    return [command, "--db", db, *roles, "--base-url", base_url, "--max-attempts", "2", *extra]


def run(command: str, db: str, server: FakeLLMServer, api: str, *extra: str) -> int:
    return cli.main(label_args(command, db, server, api, *extra))


def batched(command: str, db: str, server: FakeLLMServer, api: str, *extra: str) -> int:
    return run(command, db, server, api, "--batch", "--poll-interval", "0.01", *extra)


def live_calls(server: FakeLLMServer) -> int:
    return sum(1 for r in server.requests if r.path.endswith(("/chat/completions", "/v1/messages")))


def records(db: str) -> tuple[list[tuple], list[tuple]]:
    with open_store(db) as store:
        explanations = sorted(
            (e.unit_kind, e.unit_index, e.text, e.settings_hash, e.failed, e.cost_usd)
            for e in store.explanations(SOURCE)
        )
        scores = sorted(
            (s.unit_kind, s.unit_index, s.scorer, s.value, s.settings_hash, s.failed, s.cost_usd)
            for s in store.scores(SOURCE)
        )
    return explanations, scores


def without_cost(rows: list[tuple]) -> list[tuple]:
    return [row[:-1] for row in rows]


def stored_bytes(db: str) -> bytes:
    """The catalog file and its write-ahead log, where anything written since the last checkpoint is."""
    return b"".join(path.read_bytes() for path in (Path(db), Path(db + "-wal")) if path.exists())


def submitted_twice(server: FakeLLMServer) -> list[str]:
    seen: dict[str, int] = {}
    for batch in server.batch_submissions:
        for custom_id in batch:
            seen[custom_id] = seen.get(custom_id, 0) + 1
    return [custom_id for custom_id, n in seen.items() if n > 1]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("n_units", [1, pytest.param(N_UNITS, marks=pytest.mark.slow)])
def test_batch_labels_equal_the_live_path_at_half_the_cost(
    tmp_path: Path, server: FakeLLMServer, api: str, n_units: int
) -> None:
    live, batch = catalog(tmp_path / "live.db", n_units), catalog(tmp_path / "batch.db", n_units)
    assert run("explain", live, server, api) == 0 and run("score", live, server, api) == 0
    live_requests = live_calls(server)
    assert batched("explain", batch, server, api) == 0
    assert server.batch_submissions and len(server.batch_submissions[0]) == n_units  # one request per unit
    assert batched("score", batch, server, api) == 0
    assert live_calls(server) == live_requests  # the batch runs sent nothing live
    assert len(server.batch_submissions) == 2  # every request of every scorer went out in one round

    (live_expl, live_scores), (batch_expl, batch_scores) = records(live), records(batch)
    assert without_cost(batch_expl) == without_cost(live_expl) and len(batch_expl) == n_units
    assert without_cost(batch_scores) == without_cost(live_scores) and len(batch_scores) == 3 * n_units
    assert not any(row[-2] for row in batch_scores)  # nothing failed
    for live_row, batch_row in zip(live_expl + live_scores, batch_expl + batch_scores, strict=True):
        assert batch_row[-1] == pytest.approx(live_row[-1] * BATCH_FACTOR) and batch_row[-1] > 0
    assert submitted_twice(server) == []
    with open_store(batch) as store:
        assert [b["status"] for b in store.db.query("SELECT status FROM llm_batches")] == ["collected"] * len(
            server.batch_submissions
        )
        spent = store.ledger.total_cost()
    assert spent == pytest.approx(sum(row[-1] for row in batch_expl + batch_scores))
    assert not any(key.encode() in stored_bytes(batch) for key in KEYS.values())


def first_try_fails(fate: str):
    """Every other request (by custom id) gets `fate` the first time it is sent, an answer after."""
    seen: set[str] = set()

    def decide(custom_id: str, body: dict[str, Any]) -> Any:
        if int(custom_id, 16) % 2 == 0 and custom_id not in seen:
            seen.add(custom_id)
            return fate
        return "succeeded"

    return decide


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("fate", ["errored", "expired"])
def test_failed_and_expired_requests_are_sent_again_alone(
    tmp_path: Path, server: FakeLLMServer, api: str, fate: str
) -> None:
    db = catalog(tmp_path / "c.db")
    server.batch_fate = first_try_fails(fate)
    assert batched("explain", db, server, api) == 0
    first, *later = server.batch_submissions
    failed = sorted(c for c in first if int(c, 16) % 2 == 0)
    assert failed and len(later) == 1 and sorted(later[0]) == failed  # only the failed ones, once more
    explanations, _ = records(db)
    assert len(explanations) == N_UNITS and not any(row[4] for row in explanations)
    with open_store(db) as store:
        errors = [c for c in store.ledger.llm_calls() if c["status"] == "error"]
    why = {"errored": "bad", "expired": "expired"}[fate]  # the fake server's error message, or the expiry
    assert len(errors) == len(failed) and all(why in (c["error"] or "") for c in errors)


@pytest.mark.parametrize("api", APIS)
def test_a_request_without_an_answer_fails_its_unit_after_max_attempts_batches(
    tmp_path: Path, server: FakeLLMServer, api: str
) -> None:
    db = catalog(tmp_path / "c.db")
    doomed: list[str] = []

    def decide(custom_id: str, body: dict[str, Any]) -> Any:
        if not doomed:
            doomed.append(custom_id)
        return "errored" if custom_id in doomed else "succeeded"

    server.batch_fate = decide
    assert batched("explain", db, server, api) == 0
    assert submitted_twice(server) == doomed and len(server.batch_submissions) == 2  # --max-attempts 2
    explanations, _ = records(db)
    failed = [row for row in explanations if row[4]]
    assert len(explanations) == N_UNITS and len(failed) == 1
    with open_store(db) as store:
        [row] = [e for e in store.explanations(SOURCE) if e.failed]
    assert "no answer from 2 batches" in (row.error or "")


@pytest.mark.parametrize("api", APIS)
def test_a_stopped_run_resumes_its_open_batch_without_resubmitting(
    tmp_path: Path, server: FakeLLMServer, api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = catalog(tmp_path / "c.db")
    server.batch_polls_until_done = 10**6
    assert batched("explain", db, server, api, "--max-wait", "0.05") == 2
    assert "still running" in capsys.readouterr().err
    assert len(server.batch_submissions) == 1 and records(db)[0] == []
    server.batch_polls_until_done = 0
    assert batched("explain", db, server, api) == 0
    assert len(server.batch_submissions) == 1  # collected, not sent again
    assert len(records(db)[0]) == N_UNITS


def one_request_worst_case(db: str, server: FakeLLMServer) -> float:
    """The batch-price worst case of one unit's explain request, as the budget reserves it."""
    with open_store(db) as store:
        harvest = load_unit(store, SOURCE, store.unit_keys(SOURCE)[0])
    client = make_llm_client(MODELS["openai"], base_url=server.openai_base_url)
    explainer = LLMExplainer(client)
    request = ChatRequest(
        model=client.model,
        messages=explainer.build_messages(harvest),
        max_tokens=explainer.config.max_completion_tokens,
    )
    return client.worst_case_usd(request) * BATCH_FACTOR


def test_the_budget_cap_is_reserved_before_a_batch_is_sent(tmp_path: Path, server: FakeLLMServer) -> None:
    db = catalog(tmp_path / "c.db")
    assert batched("explain", db, server, "openai", "--max-cost", "0") == 2
    assert server.batch_submissions == []
    cap = 1.5 * one_request_worst_case(db, server)  # one request's worst case fits, two do not
    code = batched("explain", db, server, "openai", "--max-cost", f"{cap:.10f}")
    assert code in (0, 2) and server.batch_submissions and len(server.batch_submissions[0]) == 1
    with open_store(db) as store:
        assert 0 < store.ledger.total_cost() <= cap


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--explainer", "offline"], "provider batches; the explainer 'offline-ngram' makes none"),
        (["--explainer", "openai-compatible:m", "--base-url", "http://127.0.0.1:9/v1"], "no batch API"),
    ],
)
def test_batch_needs_a_provider_with_a_batch_api(
    tmp_path: Path, argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = catalog(tmp_path / "c.db")
    assert cli.main(["explain", "--db", db, *argv, "--batch"]) == 2
    assert needle in capsys.readouterr().err


# ---- kill -9 between submit and collect ---------------------------------------------------------


def _wait_for_batch_row(db: str, child: subprocess.Popen[str], rows_before: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()[1]
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                if conn.execute("SELECT COUNT(*) FROM llm_batches").fetchone()[0] > rows_before:
                    return
        except sqlite3.OperationalError:
            pass  # not created yet
        time.sleep(0.05)
    raise AssertionError("the child never stored a batch id")


@pytest.mark.slow
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("command", ["explain", "score"])
def test_kill_9_between_submit_and_collect(tmp_path: Path, server: FakeLLMServer, api: str, command: str) -> None:
    db = catalog(tmp_path / "c.db")
    if command == "score":  # explanations to score first, through a batch that completes
        assert batched("explain", db, server, api) == 0
    before = len(server.batch_submissions)
    server.batch_polls_until_done = 10**6  # the child polls until it is killed
    argv = label_args(command, db, server, api, "--batch", "--poll-interval", "0.02")
    env = {**os.environ, **KEYS}
    child = subprocess.Popen(
        [sys.executable, "-m", "autointerp.cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_batch_row(db, child, before)
        time.sleep(0.2)  # well into polling
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()  # reaps it and closes its pipes
    assert child.returncode == -signal.SIGKILL
    submitted = len(server.batch_submissions)
    assert submitted == before + 1

    server.batch_polls_until_done = 0
    assert batched(command, db, server, api) == 0
    new = server.batch_submissions[before:]
    finished = set(new[0])  # everything the killed run sent was answered
    assert not any(finished & set(batch) for batch in new[1:])  # none of it sent again
    assert submitted_twice(server) == []
    explanations, scores = records(db)
    assert len(explanations) == N_UNITS and not any(row[4] for row in explanations)
    if command == "score":
        assert len(scores) == 3 * N_UNITS and not any(row[-2] for row in scores)
    assert not any(key.encode() in stored_bytes(db) for key in KEYS.values())
