"""User-caused errors: one type shared with `sae`, so the CLI catches both stages' mistakes alike."""

from sae.errors import UserError

__all__ = ["UserError"]
