"""Records to table rows and back: JSON text for the columns the schema marks as JSON, packed arrays for
those it marks as packed, the unit key as (source, kind, index), a created_at stamp."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar, get_args

import orjson
from pydantic import BaseModel

from autointerp.store import packed
from autointerp.store.schema import Table

Record = TypeVar("Record", bound=BaseModel)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def dumps(value: Any) -> str:
    """Compact JSON text (orjson: the store writes and reads millions of small arrays)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


loads = orjson.loads

# A packed column (Table.packed) by name: its writer and its reader.
_PACKED = {"details": (packed.pack_details, packed.unpack_details)}


def record_row(table: Table, source: str, record: BaseModel) -> tuple[Any, ...]:
    """The row of a unit-level record (an Explanation or a Score), in `table.columns` order."""
    data = record.model_dump(mode="json", exclude=set(table.packed))
    data["kind"] = data.pop("unit_kind")
    data["index"] = data.pop("unit_index")
    data["source"] = source
    data["created_at"] = now()
    for name in table.json:
        data[name] = dumps(data[name])
    for name in table.packed:
        data[name] = _PACKED[name][0](getattr(record, name))
    return tuple(int(v) if isinstance(v, bool) else v for v in (data.get(c) for c in table.columns))


def row_record(model: type[Record], table: Table, row: dict[str, Any]) -> Record:
    """The record a row of `table` holds; a NULL in a column added after the row was written gives
    the field's default."""
    fields = model.model_fields
    data: dict[str, Any] = {"unit_kind": row["kind"], "unit_index": row["index"]}
    for name, value in row.items():
        if name not in fields:
            continue  # source, kind, index, created_at
        if value is None and type(None) not in get_args(fields[name].annotation):
            continue
        if value is not None and name in table.json:
            value = loads(value)
        elif value is not None and name in table.packed:
            value = _PACKED[name][1](value)
        data[name] = value
    return model.model_validate(data)
