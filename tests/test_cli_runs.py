"""`autointerp runs`: the run history and LLM call log a catalog keeps, read back from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from autointerp.llm.ledger import LLMCall
from autointerp.store import open_store
from tests.test_cli import assert_clean_error, cli_in_process


def _catalog(tmp_path: Path) -> tuple[str, str, str]:
    db = tmp_path / "c.db"
    with open_store(db) as store:
        paid = store.new_run("explain", {"label": {"explainer": "openai:gpt-4o-mini"}})
        store.ledger.log_llm_call(
            LLMCall(
                backend="openai", model="gpt-4o-mini", status="error", run_id=paid, http_status=500, error="HTTP 500"
            )
        )
        store.ledger.log_llm_call(
            LLMCall(backend="openai", model="gpt-4o-mini", status="ok", run_id=paid, attempt=2, cost_usd=0.25)
        )
        store.set_run_status(paid, "done")
        offline = store.new_run("score", {"label": {"simulator": "offline"}})
    return str(db), paid, offline


def test_runs_lists_each_run_with_its_calls_and_spend(tmp_path: Path) -> None:
    db, paid, offline = _catalog(tmp_path)
    result = cli_in_process("runs", db, "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["run_id"], r["command"], r["status"], r["llm_calls"], r["cost_usd"]) for r in rows] == [
        (paid, "explain", "done", 2, 0.25),
        (offline, "score", "running", 0, 0.0),
    ]


def test_runs_calls_prints_one_runs_call_log(tmp_path: Path) -> None:
    db, paid, _ = _catalog(tmp_path)
    result = cli_in_process("runs", db, "--calls", paid, "--json")
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(c["status"], c["attempt"], c["http_status"], c["error"]) for c in calls] == [
        ("error", 1, 500, "HTTP 500"),
        ("ok", 2, None, None),
    ]
    table = cli_in_process("runs", db, "--calls", paid)
    assert "2 calls" in table.stderr and "gpt-4o-mini" in table.stdout


def test_runs_names_an_unknown_run(tmp_path: Path) -> None:
    db, _, _ = _catalog(tmp_path)
    assert_clean_error(cli_in_process("runs", db, "--calls", "nope"), "no run 'nope'")
