"""`autointerp harvest` killed by SIGKILL after its first pass, then run again: it resumes from its
checkpoint (it does not read the first pass again) and the catalog holds the same units, examples
and windows as an uninterrupted harvest."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TABLES = {"units": 'kind, "index"', "examples": 'kind, "index"', "windows": "window_id"}


def harvest(db: Path, stderr: int = subprocess.PIPE) -> subprocess.Popen:
    args = ["harvest", "--db", str(db), "--tokens", "24000", "--top", "6"]
    return subprocess.Popen([sys.executable, "-m", "autointerp.cli", *args], cwd=REPO, stderr=stderr, text=True)


def rows(db: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(db)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall() for table, order in TABLES.items()
        }
    finally:
        conn.close()


def test_a_harvest_killed_after_its_first_pass_resumes_to_the_same_catalog(tmp_path: Path) -> None:
    whole = harvest(tmp_path / "whole.db")
    _, err = whole.communicate(timeout=600)  # (reading as it runs: a full pipe would stall the process)
    assert whole.returncode == 0, err

    db = tmp_path / "killed.db"
    killed = harvest(db, stderr=subprocess.DEVNULL)  # polled, not read: nothing may wait on a pipe
    deadline = time.monotonic() + 600
    while not list(tmp_path.glob("killed.db.harvest-*.pt")) and killed.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "killed before it finished"
    [checkpoint] = tmp_path.glob("killed.db.harvest-*.pt")

    resumed = harvest(db)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert "harvest:" not in err, "the first pass is not read again"
    assert "hard negatives:" in err
    assert not checkpoint.exists(), "removed once the catalog holds the units"
    first, again = rows(tmp_path / "whole.db"), rows(db)
    assert len(first["units"]) == 512 and all(first[t] for t in TABLES)
    for table in TABLES:
        assert again[table] == first[table], table
