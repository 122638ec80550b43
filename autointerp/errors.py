"""User-caused errors: one type shared with `sae`, so the CLI catches both stages' mistakes alike."""

from sae.errors import UserError, describe_validation_error

__all__ = ["UserError", "describe_validation_error"]
