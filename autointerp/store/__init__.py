"""The catalog file: catalog tables (catalog.py), the LLM ledger (ledger.py), and the schema of both
(schema.py). Everything else imports from here."""

from __future__ import annotations

from pathlib import Path

from autointerp.store.catalog import CatalogStore
from autointerp.store.ledger import SQLiteLedger
from autointerp.store.schema import SCHEMA_VERSION, StoreError


def open_store(path: str | Path) -> CatalogStore:
    """Open (creating if needed, migrating if older) the catalog file at `path`."""
    return CatalogStore(path)


__all__ = ["SCHEMA_VERSION", "CatalogStore", "SQLiteLedger", "StoreError", "open_store"]
