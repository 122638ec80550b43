"""Reading the HTML catalog's data files back in tests (the browser reads them as scripts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_script(path: Path) -> tuple[str, list[Any]]:
    """(callback, its arguments) of a data file: `window.<callback>(<JSON>,<JSON>...);`."""
    text = path.read_text(encoding="utf-8")
    name, _, rest = text.partition("(")
    assert name.startswith("window.__") and rest.endswith(");\n"), path
    return name.removeprefix("window."), json.loads("[" + rest[: -len(");\n")] + "]")


def read_units(html_dir: Path) -> list[dict[str, Any]]:
    """Every unit record of the catalog's unit shards, in unit id order."""
    units: list[dict[str, Any]] = []
    for path in sorted((html_dir / "data" / "units").glob("shard_*.js")):
        name, (_, _, records) = read_script(path)
        assert name == "__shard", path
        units += records
    assert [u["uid"] for u in units] == list(range(len(units)))
    return units
