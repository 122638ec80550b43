"""The unit_links table: which feature of a smaller SAE each feature descends from (feature splitting).

An analysis replaces every link between the sources it compared in one transaction, so a re-run with
other tokens never leaves old and new links mixed.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlite_utils

from autointerp.records import UnitLink
from autointerp.store.schema import UNIT_LINKS

_COLUMNS = ", ".join(f'"{c}"' for c in UNIT_LINKS.columns)


def replace_links(db: sqlite_utils.Database, links: Iterable[UnitLink]) -> int:
    """Write `links`, first removing any earlier link between the same (child, parent) sources; how many."""
    rows = [
        (link.child_source, "feature", link.child_index, link.parent_source, link.parent_index, link.parent_size,
         link.relation, link.decoder_cosine, link.activation_correlation)
        for link in links
    ]  # fmt: skip
    pairs = sorted({(row[0], row[3]) for row in rows})
    with db.atomic():
        db.conn.executemany("DELETE FROM unit_links WHERE source = ? AND parent_source = ?", pairs)
        db.conn.executemany(UNIT_LINKS.insert_sql(), rows)
    return len(rows)


def read_links(db: sqlite_utils.Database) -> list[UnitLink]:
    """Every stored link, ordered by child, then parent source and relation."""
    query = f'SELECT {_COLUMNS} FROM unit_links ORDER BY source, "index", parent_source, relation'
    return [
        UnitLink(child_source=source, child_index=index, parent_source=parent_source, parent_index=parent_index,
                 parent_size=parent_size, relation=relation, decoder_cosine=cosine, activation_correlation=corr)
        for source, _, index, parent_source, parent_index, parent_size, relation, cosine, corr in db.execute(query)
    ]  # fmt: skip
