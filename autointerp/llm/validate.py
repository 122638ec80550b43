"""Whether an answer is whole and has the asked-for shape, checked before it is cached.

A reply cut off at the output limit, or JSON missing what the schema requires, was paid for but is
unusable; cached, it would be replayed for free as if it were an answer (and stored as an explanation).
"""

from __future__ import annotations

import json
import re
from typing import Any

from autointerp.llm.base import ChatRequest, ChatResponse

# finish_reason (OpenAI) / stop_reason (Anthropic) values meaning the answer stopped before its end.
TRUNCATED = frozenset({"length", "max_tokens", "model_context_window_exceeded"})
_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "array": list,
    "object": dict,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def reply_problem(request: ChatRequest, response: ChatResponse) -> str | None:
    """Why this answer cannot be used, or None when it can."""
    if response.finish_reason in TRUNCATED:
        return f"the answer was cut off at the output limit (finish reason {response.finish_reason!r}, max_tokens {request.max_tokens})"
    if request.json_schema is None:
        return None
    try:
        payload = json.loads(_FENCE.sub("", response.text.strip()))
    except json.JSONDecodeError as exc:
        return f"the answer is not the asked-for JSON ({exc.msg} at character {exc.pos})"
    return schema_problem(payload, request.json_schema)


def schema_problem(payload: Any, schema: dict[str, Any]) -> str | None:
    """A shallow check of the schemas we send: the top-level type, required keys, property types."""
    if schema.get("type") == "object":
        if not isinstance(payload, dict):
            return "the answer is not a JSON object"
        missing = [key for key in schema.get("required", []) if key not in payload]
        if missing:
            return f"the answer lacks {missing}"
        for key, spec in schema.get("properties", {}).items():
            expected = _JSON_TYPES.get(spec.get("type", ""))
            if key in payload and expected is not None and not isinstance(payload[key], expected):
                return f"{key!r} in the answer is not of type {spec['type']}"
    return None
