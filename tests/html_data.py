"""Reading the HTML catalog's data files back in tests (the browser reads them as scripts)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any


def read_script(path: Path) -> tuple[str, list[Any]]:
    """(callback, its arguments) of a data file: `window.<callback>.apply(null, JSON.parse('<JSON>'));`."""
    text = path.read_text(encoding="utf-8")
    match = re.fullmatch(r"window\.(__\w+)\.apply\(null, JSON\.parse\('(.*)'\)\);\n", text, re.DOTALL)
    assert match, path
    literal = re.sub(r"\\(u2028|u2029|.)", lambda m: {"u2028": "\u2028", "u2029": "\u2029"}.get(m[1], m[1]), match[2])
    return match[1], json.loads(literal)


def read_units(html_dir: Path) -> list[dict[str, Any]]:
    """Every unit record of the catalog's unit shards, in unit id order."""
    units: list[dict[str, Any]] = []
    for path in sorted((html_dir / "data" / "units").glob("shard_*.js")):
        name, (_, _, records) = read_script(path)
        assert name == "__shard", path
        units += records
    assert [u["uid"] for u in units] == list(range(len(units)))
    return units
