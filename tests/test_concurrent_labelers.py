"""Two labelers on one catalog split the work: two `autointerp explain` (then `score`) processes,
started together through the real command line against the local LLM server, never send the same
request twice. Also the lease rules themselves: a live owner keeps its unit, an expired or dead one
does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from autointerp.store import open_store
from autointerp.store.leases import LEASE_SECONDS, new_owner
from autointerp.testing.fake_llm_server import FakeLLMServer
from autointerp.testing.planted import SimulatingResponder, planted_harvest, planted_units

REPO = Path(__file__).resolve().parents[1]
SOURCE = "planted/test"
UNITS = 12


def both_at_once(*args: str, env: dict[str, str]) -> list[dict]:
    """Start two identical CLI processes together; their JSON reports once both have ended."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "autointerp.cli", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    return reports


def repeated(server: FakeLLMServer) -> list[int]:
    """How often each request body that arrived more than once arrived."""
    counts = Counter(json.dumps(r.body, sort_keys=True) for r in server.requests)
    return [n for n in counts.values() if n > 1]


def test_two_explain_and_two_score_processes_make_no_duplicate_request(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    with open_store(db) as store:
        store.put_source(SOURCE, {"planted": True})
        store.put_units(SOURCE, [planted_harvest(u) for u in planted_units(UNITS)])
    env = {**os.environ, "OPENAI_API_KEY": "fake-openai-key-0123456789"}
    # replies slow enough that the two processes overlap for seconds: without leases both ask for unit 0 first
    with FakeLLMServer(SimulatingResponder(), latency_s=0.5) as server:
        llm = ["--base-url", server.openai_base_url, "--concurrency", "2"]
        explained = both_at_once("explain", "--db", db, "--explainer", "openai:gpt-4o-mini", *llm, env=env)
        assert server.request_count >= UNITS and repeated(server) == []
        assert sum(r["written"] for r in explained) == UNITS
        assert all(r["written"] > 0 for r in explained), explained  # split, not one doing it all
        server.reset()
        scored = both_at_once(
            "score", "--db", db, "--scorers", "detection", "--explainer", "openai:gpt-4o-mini",
            "--simulator", "openai:gpt-4o-mini", *llm, env=env,
        )  # fmt: skip
        assert server.request_count >= UNITS and repeated(server) == []
        assert sum(r["written"] for r in scored) == UNITS
    with open_store(db) as store:
        assert store.db.execute("SELECT count(*) FROM leases").fetchone()[0] == 0, "every lease released"


def test_a_lease_is_kept_by_a_live_owner_and_lost_by_an_expired_or_dead_one(tmp_path: Path) -> None:
    with open_store(tmp_path / "c.db") as store:
        mine, theirs = new_owner(), new_owner()
        assert store.take_lease(SOURCE, "explain:h", "feature", 1, mine)
        assert store.take_lease(SOURCE, "explain:h", "feature", 1, mine), "its owner may take it again"
        assert not store.take_lease(SOURCE, "explain:h", "feature", 1, theirs)
        assert store.take_lease(SOURCE, "explain:other", "feature", 1, theirs), "another task is another lease"
        store.release_lease(SOURCE, "explain:h", "feature", 1, mine)
        assert store.take_lease(SOURCE, "explain:h", "feature", 1, theirs)

        store.db.execute("UPDATE leases SET expires_at = ?", [time.time() - 1])
        store.db.conn.commit()
        assert store.take_lease(SOURCE, "explain:h", "feature", 1, mine), "expired"
        row = store.db.execute("SELECT expires_at FROM leases WHERE owner = ?", [mine]).fetchone()
        assert row[0] > time.time() + LEASE_SECONDS - 60

        ended = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
        ).stdout.strip()
        host = mine.split(":")[0]
        assert store.take_lease(SOURCE, "explain:h", "feature", 2, f"{host}:{ended}:x")
        assert store.take_lease(SOURCE, "explain:h", "feature", 2, mine), "its owner process has ended"
        assert store.take_lease(SOURCE, "explain:h", "feature", 3, f"elsewhere.example:{ended}:y")
        assert not store.take_lease(SOURCE, "explain:h", "feature", 3, mine), "another machine's: only expiry tells"
