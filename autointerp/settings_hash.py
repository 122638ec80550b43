"""One short hash of every setting that changes a stage's output.

Stages store it next to each result and skip a unit whose result already carries the same hash, so
a re-run repeats nothing, while changing the model, prompt or a parameter makes fresh results.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def settings_hash(settings: dict[str, Any]) -> str:
    """16 hex digits of the SHA-256 of the settings as canonical JSON (sorted keys)."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
