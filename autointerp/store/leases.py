"""Leases: which process is working on which unit, so that two labelers on one catalog split the work.

A lease names a unit, a task (the stage and its settings hash), an owner and an expiry. It is taken in
one IMMEDIATE transaction (the write lock is held from the read to the write, so two processes cannot
both see a unit free and both take it) and released once the unit's result is stored. A lease of a
crashed owner stops counting when it expires, or at once when the owner was a process on this machine
that no longer exists.
"""

from __future__ import annotations

import os
import secrets
import socket
import time

import sqlite_utils

from autointerp.store.schema import LEASES

# Longer than one unit's work takes, retries and backoff included: a live owner never loses its lease.
LEASE_SECONDS = 900.0


def new_owner() -> str:
    """host:pid:random, so a lease of a dead process on this machine can be recognised."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _owner_gone(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process: only its expiry tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def take(db: sqlite_utils.Database, source: str, task: str, kind: str, index: int, owner: str) -> bool:
    """Take the unit's lease for `task` unless another live owner holds it; returns whether taken."""
    conn = db.conn
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            f'SELECT owner, expires_at FROM "{LEASES.name}" WHERE source = ? AND task = ? AND kind = ? AND "index" = ?',
            [source, task, kind, index],
        ).fetchone()
        free = row is None or row[0] == owner or row[1] < now or _owner_gone(row[0])
        if free:
            conn.execute(LEASES.insert_sql(), [source, task, kind, index, owner, now + LEASE_SECONDS])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return free


def release(db: sqlite_utils.Database, source: str, task: str, kind: str, index: int, owner: str) -> None:
    with db.atomic():
        db.execute(
            f'DELETE FROM "{LEASES.name}" WHERE source = ? AND task = ? AND kind = ? AND "index" = ? AND owner = ?',
            [source, task, kind, index, owner],
        )
