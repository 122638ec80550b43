"""Agent traces in the catalog's SQLite file, in tables of their own (the catalog store's tables
are untouched): one row per unit run, one per probe, one per revision. A trace is keyed by source,
unit, driver and budget, so a re-run with the same settings skips units already done."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from autointerp.agent.probes import ProbeRecord
from autointerp.agent.rules import Hypothesis
from autointerp.agent.trace import AgentTrace, Revision
from autointerp.records import CatalogEntry, UnitKind

_KEY = "source TEXT NOT NULL, kind TEXT NOT NULL, unit INTEGER NOT NULL, driver TEXT NOT NULL, budget INTEGER NOT NULL"
_KEY_COLUMNS = "source, kind, unit, driver, budget"
DDL = [
    f"""CREATE TABLE IF NOT EXISTS agent_traces (
        {_KEY}, initial TEXT NOT NULL, final TEXT NOT NULL, hypothesis TEXT, calls INTEGER NOT NULL,
        created_at TEXT NOT NULL, PRIMARY KEY ({_KEY_COLUMNS}))""",
    f"""CREATE TABLE IF NOT EXISTS agent_probes (
        {_KEY}, position INTEGER NOT NULL, purpose TEXT NOT NULL, tokens TEXT NOT NULL,
        activations TEXT NOT NULL, target INTEGER, PRIMARY KEY ({_KEY_COLUMNS}, position))""",
    f"""CREATE TABLE IF NOT EXISTS agent_revisions (
        {_KEY}, position INTEGER NOT NULL, calls INTEGER NOT NULL, before TEXT NOT NULL, after TEXT NOT NULL,
        reason TEXT NOT NULL, PRIMARY KEY ({_KEY_COLUMNS}, position))""",
]


class TraceStore:
    """Reads and writes agent traces in a catalog database (opened alongside the CatalogStore)."""

    def __init__(self, path: str | Path) -> None:
        self.db = sqlite_utils.Database(path)
        self.db.execute("PRAGMA busy_timeout = 10000")
        for statement in DDL:
            self.db.execute(statement)

    def put(self, source: str, trace: AgentTrace) -> None:
        """Write (or replace) one unit's trace, its probes and revisions, in one transaction."""
        key = [source, trace.unit_kind, trace.unit_index, trace.driver, trace.budget]
        hypothesis = trace.hypothesis.model_dump_json() if trace.hypothesis else None
        with self.db.conn:
            for table in ("agent_traces", "agent_probes", "agent_revisions"):
                self.db.execute(f"DELETE FROM {table} WHERE ({_KEY_COLUMNS}) = (?, ?, ?, ?, ?)", key)
            self.db.execute(
                f"INSERT INTO agent_traces ({_KEY_COLUMNS}, initial, final, hypothesis, calls, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [*key, trace.initial, trace.final, hypothesis, trace.calls, datetime.now(UTC).isoformat()],
            )
            self.db.conn.executemany(
                f"INSERT INTO agent_probes ({_KEY_COLUMNS}, position, purpose, tokens, activations, target) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    [*key, i, p.purpose, json.dumps(p.tokens), json.dumps(p.activations), p.target]
                    for i, p in enumerate(trace.probes)
                ],
            )
            self.db.conn.executemany(
                f"INSERT INTO agent_revisions ({_KEY_COLUMNS}, position, calls, before, after, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[*key, i, r.calls, r.before, r.after, r.reason] for i, r in enumerate(trace.revisions)],
            )

    def has(self, source: str, kind: UnitKind, index: int, driver: str, budget: int) -> bool:
        row = self.db.execute(
            f"SELECT 1 FROM agent_traces WHERE ({_KEY_COLUMNS}) = (?, ?, ?, ?, ?)",
            [source, kind, index, driver, budget],
        ).fetchone()
        return row is not None

    def traces(self, source: str, kind: UnitKind, index: int) -> list[AgentTrace]:
        """Every stored trace of one unit, newest first."""
        rows = list(
            self.db.query(
                "SELECT * FROM agent_traces WHERE source = ? AND kind = ? AND unit = ? ORDER BY created_at DESC",
                [source, kind, index],
            )
        )
        return [self._trace(row) for row in rows]

    def _trace(self, row: dict) -> AgentTrace:
        key = [row["source"], row["kind"], row["unit"], row["driver"], row["budget"]]
        where = f"WHERE ({_KEY_COLUMNS}) = (?, ?, ?, ?, ?) ORDER BY position"
        probes = [
            ProbeRecord(purpose=p["purpose"], tokens=json.loads(p["tokens"]), activations=json.loads(p["activations"]),
                        target=p["target"])
            for p in self.db.query(f"SELECT * FROM agent_probes {where}", key)
        ]  # fmt: skip
        revisions = [
            Revision(calls=r["calls"], before=r["before"], after=r["after"], reason=r["reason"])
            for r in self.db.query(f"SELECT * FROM agent_revisions {where}", key)
        ]
        return AgentTrace(
            unit_kind=row["kind"], unit_index=row["unit"], driver=row["driver"], initial=row["initial"],
            final=row["final"], budget=row["budget"], calls=row["calls"], revisions=revisions, probes=probes,
            hypothesis=Hypothesis.model_validate_json(row["hypothesis"]) if row["hypothesis"] else None,
        )  # fmt: skip

    def close(self) -> None:
        self.db.close()


def attach_traces(entries: Iterable[CatalogEntry], path: str | Path) -> Iterator[CatalogEntry]:
    """The entries, as they stream by, with their units' agent traces in `extra["agent_traces"]`
    (for the exporters)."""
    store = TraceStore(path)
    try:
        for entry in entries:
            found = store.traces(entry.source, entry.harvest.kind, entry.harvest.index)
            if found:
                entry.extra["agent_traces"] = [t.model_dump(mode="json", exclude={"hypothesis"}) for t in found]
            yield entry
    finally:
        store.close()
