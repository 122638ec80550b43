"""Full-text search over a catalog's explanations, ranked by SQLite FTS5's bm25.

The index (schema.EXPLANATIONS_FTS) follows the explanations table by rowid. Explanations are written
with INSERT OR REPLACE, which gives a replaced row a new rowid, so the index is rebuilt whenever the
table changed since the last build; the table's size, last rowid and text length tell when that is.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from autointerp.errors import UserError
from autointerp.store import CatalogStore

_STAMP_KEY = "explanations_fts_stamp"
_WORD = re.compile(r"\w+", re.UNICODE)


class SearchHit(BaseModel):
    source: str
    kind: str
    index: int
    explainer: str
    text: str
    score: float  # bm25 relevance: higher is better (SQLite reports it negated)


def refresh_index(store: CatalogStore) -> bool:
    """Rebuild the full-text index if the explanations changed since it was built; whether it was."""
    db = store.db
    stamp = ":".join(
        str(v) for v in db.execute("SELECT count(*), max(rowid), total(length(text)) FROM explanations").fetchone()
    )
    row = db.execute("SELECT value FROM meta WHERE key = ?", [_STAMP_KEY]).fetchone()
    if row is not None and row[0] == stamp:
        return False
    with db.atomic():
        db.execute("INSERT INTO explanations_fts(explanations_fts) VALUES ('rebuild')")
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [_STAMP_KEY, stamp])
    return True


def fts_query(text: str) -> str:
    """The words of a free-text query as FTS5 terms joined by OR: bm25 then ranks explanations that
    match more (and rarer) words first, and no character of the query is read as FTS syntax."""
    words = _WORD.findall(text)
    if not words:
        raise UserError(f"the search query {text!r} has no words to look for")
    return " OR ".join(f'"{w}"' for w in words)


def search_explanations(
    store: CatalogStore, query: str, *, limit: int = 20, source: str | None = None, kind: str | None = None
) -> list[SearchHit]:
    """The usable explanations best matching `query`, best first."""
    refresh_index(store)
    sql = (
        'SELECT e.source, e.kind, e."index", e.explainer, e.model, e.text, bm25(explanations_fts) AS rank '
        "FROM explanations_fts JOIN explanations e ON e.rowid = explanations_fts.rowid "
        "WHERE explanations_fts MATCH ? AND NOT e.failed"
    )
    params: list[object] = [fts_query(query)]
    for column, value in (("source", source), ("kind", kind)):
        if value is not None:
            sql += f" AND e.{column} = ?"
            params.append(value)
    sql += ' ORDER BY rank, e.source, e.kind, e."index" LIMIT ?'
    params.append(limit)
    return [
        SearchHit(source=src, kind=k, index=i, explainer=model or explainer, text=text, score=-rank)
        for src, k, i, explainer, model, text, rank in store.db.execute(sql, params)
    ]
