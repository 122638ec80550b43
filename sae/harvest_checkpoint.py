"""Where a harvest saves its running state, so a killed harvest resumes instead of starting over.

The file holds the harvesters of every unit kind, the phase (first pass or hard negatives) and how many windows that phase has read; it is written atomically every
`every_tokens` tokens and at the end of the first pass. A checkpoint whose `key` (the settings and
units of the harvest) differs from the one asked for is ignored with a warning and overwritten:
it describes another harvest.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from sae.errors import UserError

log = logging.getLogger("sae.harvest")

# Each checkpoint writes the whole state (at the demo's 4,608 units 582 MB, 2-3.3 s measured on the
# shared 2-core machine), so it is written rarely: at the demo's settings once in the 400k-token first
# pass and once at its end.
CHECKPOINT_TOKENS = 200_000
FORMAT = 4  # 2: no generator state (each batch seeds its own draws); 3: slots keep their ranks; 4: no tokens


class HarvestCheckpoint:
    def __init__(self, path: Path, key: dict[str, Any], every_tokens: int = CHECKPOINT_TOKENS) -> None:
        if every_tokens < 1:
            raise UserError(f"a harvest checkpoint interval must be at least 1 token, got {every_tokens}")
        self.path, self.key, self.every_tokens = path, key, every_tokens

    def due(self, tokens_before: int, tokens_after: int) -> bool:
        """Whether a batch covering (tokens_before, tokens_after] crosses a multiple of the interval."""
        return tokens_after // self.every_tokens > tokens_before // self.every_tokens

    def load(self, device: torch.device) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location=device, weights_only=False)
        except Exception as err:  # noqa: BLE001 (a truncated or foreign file: any unpickling error)
            raise UserError(f"{self.path} is not a readable harvest checkpoint ({err}); delete it") from None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT or saved.get("key") != self.key:
            log.warning("%s was written by another harvest; starting this one from the beginning", self.path)
            return None
        return saved

    def save(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        torch.save({"format": FORMAT, "key": self.key, **state}, tmp)
        os.replace(tmp, self.path)  # a kill leaves the old or the new checkpoint, never half of one

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
