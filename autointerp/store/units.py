"""Harvested units in three tables: units (stats, logit-lens tokens), examples (one packed row per unit:
activations, where each example sits in its window) and windows (token text once per window, shared
by every unit's examples).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlite_utils

from autointerp.records import NeuronWeight, TokenWeight, UnitHarvest, UnitKind, UnitStats
from autointerp.store import packed
from autointerp.store.rows import dumps, loads
from autointerp.store.schema import EXAMPLES, UNITS, WINDOWS

# Parsed window tokens by (source, window_id), shared by the many units whose examples come from the
# same windows. Owned by one store; cleared on every write.
WindowCache = dict[tuple[str, int], list[str | None]]


def write_units(db: sqlite_utils.Database, source: str, harvests: Iterable[UnitHarvest], cache: WindowCache) -> int:
    """Write (or replace) units with their examples in one transaction; returns how many.

    A replaced unit's examples are replaced whole, so a re-harvest never mixes windows of two harvests.
    Rows go to SQLite every `WRITE_CHUNK` units, so memory holds a chunk's rows, not a harvest's.
    """
    window_tokens: dict[int, dict[int, str]] = {}
    written = 0
    cache.clear()
    with db.atomic():
        chunk: list[UnitHarvest] = []
        for h in harvests:
            chunk.append(h)
            if len(chunk) == WRITE_CHUNK:
                written += _write_chunk(db, source, chunk, window_tokens)
                chunk = []
        written += _write_chunk(db, source, chunk, window_tokens)
        db.conn.executemany(
            WINDOWS.insert_sql(),
            [(source, wid, dumps(_overlay_window(db, source, wid, known))) for wid, known in window_tokens.items()],
        )
    return written


WRITE_CHUNK = 256


def _write_chunk(
    db: sqlite_utils.Database, source: str, harvests: list[UnitHarvest], window_tokens: dict[int, dict[int, str]]
) -> int:
    """The unit and example rows of some units; each example's tokens noted in `window_tokens`."""
    unit_rows: list[tuple[Any, ...]] = []
    example_rows: list[tuple[Any, ...]] = []
    for h in harvests:
        unit_rows.append(
            (
                source,
                h.kind,
                h.index,
                h.stats.tokens_seen,
                h.stats.active_count,
                h.stats.density,
                h.stats.max_activation,
                h.stats.model_dump_json(),
                dumps([t.model_dump() for t in h.promoted_tokens]),
                dumps([t.model_dump() for t in h.suppressed_tokens]),
                dumps([n.model_dump() for n in h.top_neurons]),
            )
        )
        for e in h.examples:
            known = window_tokens.setdefault(e.window_id, {})
            for offset, token in enumerate(e.tokens):
                known[e.start + offset] = token
        example_rows.append((source, h.kind, h.index, len(h.examples), packed.pack_examples(h.examples)))
    conn = db.conn
    conn.executemany(UNITS.insert_sql(), unit_rows)
    conn.executemany(EXAMPLES.insert_sql(), example_rows)
    return len(unit_rows)


def _overlay_window(db: sqlite_utils.Database, source: str, window_id: int, known: dict[int, str]) -> list[str | None]:
    """The stored window's tokens with these positions written over them (never fewer known)."""
    row = db.execute("SELECT tokens FROM windows WHERE source = ? AND window_id = ?", [source, window_id]).fetchone()
    tokens: list[str | None] = loads(row[0]) if row else []
    length = max(len(tokens), max(known) + 1 if known else 0)
    tokens.extend([None] * (length - len(tokens)))
    for position, token in known.items():
        tokens[position] = token
    return tokens


def unit_keys(db: sqlite_utils.Database, source: str, kind: UnitKind | None = None) -> list[tuple[UnitKind, int]]:
    """(kind, index) of every stored unit of a source, sorted."""
    sql = 'SELECT kind, "index" FROM units WHERE source = ?'
    params: list[Any] = [source]
    if kind is not None:
        sql += " AND kind = ?"
        params.append(kind)
    return [(k, i) for k, i in db.execute(sql + ' ORDER BY kind, "index"', params)]


def read_unit(
    db: sqlite_utils.Database, source: str, kind: UnitKind, index: int, cache: WindowCache, *, examples: bool = True
) -> UnitHarvest | None:
    row = db.execute(
        "SELECT stats, promoted_tokens, suppressed_tokens, top_neurons FROM units "
        'WHERE source = ? AND kind = ? AND "index" = ?',
        [source, kind, index],
    ).fetchone()
    if row is None:
        return None
    stats, promoted, suppressed, neurons = row
    blob = (
        db.execute(
            'SELECT packed FROM examples WHERE source = ? AND kind = ? AND "index" = ?', [source, kind, index]
        ).fetchone()
        if examples
        else None
    )
    read = [] if blob is None else packed.unpack_examples(blob[0], lambda ids: _windows(db, source, ids, cache))
    return UnitHarvest(
        kind=kind,
        index=index,
        stats=UnitStats.model_validate_json(stats),
        examples=read,
        promoted_tokens=[TokenWeight(**t) for t in loads(promoted)],
        suppressed_tokens=[TokenWeight(**t) for t in loads(suppressed)],
        top_neurons=[NeuronWeight(**n) for n in loads(neurons)],
    )


def _windows(
    db: sqlite_utils.Database, source: str, window_ids: list[int], cache: WindowCache
) -> dict[int, list[str | None]]:
    """The tokens of these windows, read from the cache or, for those not in it yet, from the table."""
    missing = sorted({w for w in window_ids if (source, w) not in cache})
    for at in range(0, len(missing), 500):  # under SQLite's limit on bound parameters
        part = missing[at : at + 500]
        sql = f"SELECT window_id, tokens FROM windows WHERE source = ? AND window_id IN ({', '.join('?' * len(part))})"
        for window_id, tokens in db.execute(sql, [source, *part]):
            cache[(source, window_id)] = loads(tokens)
    return {w: cache[(source, w)] for w in window_ids}
