"""Opening the JSON and checkpoint files a run reads back, each checked up front with one clear error.

A truncated or hand-edited file in an output folder should stop a run before any work, naming the
file and what to do, not fail halfway through with a parser's stack.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from sae.errors import UserError

_CHECKPOINT_KEYS = frozenset({"config", "sae", "optimizer", "step"})


def read_json_object(path: Path) -> dict:
    """The JSON object in `path`; anything else (bad JSON, a list, bad bytes) is a UserError."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not valid JSON ({err}); fix or delete it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object, got a {type(data).__name__}; fix or delete it")
    return data


def check_sae_outputs(folder: Path) -> None:
    """Open every file that training or evaluation reads back from an SAE output folder."""
    from sae.training import CHECKPOINT  # sae.training imports this module's neighbours; import late

    for name in ("training.json", "metrics.json"):
        if (folder / name).exists():
            read_json_object(folder / name)
    checkpoint = folder / CHECKPOINT
    if not checkpoint.exists():
        return
    try:
        payload = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 -- torch raises many types for a damaged file
        raise UserError(f"{checkpoint} is damaged ({type(err).__name__}); delete it to train from the start") from None
    if not isinstance(payload, dict) or not _CHECKPOINT_KEYS <= payload.keys():
        raise UserError(f"{checkpoint} is not an SAE training checkpoint; delete it to train from the start")


def check_output_folder(folder: Path) -> Path:
    """FOLDER is, or can be made, a folder we can write into; checked before any work is done."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"output folder {folder} is a file; name a folder")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot create output folder {folder}: {existing} is a file")
    try:  # os.access is wrong for root and for read-only mounts; a real file is not
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise UserError(f"cannot write into {existing}: {err.strerror}") from None
    return folder
