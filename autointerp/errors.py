"""User-caused errors: one type shared with `sae`, so the CLI catches both stages' mistakes alike."""

from pydantic import ValidationError

from sae.errors import UserError

__all__ = ["UserError", "describe_validation_error"]


def describe_validation_error(err: ValidationError) -> str:
    """Every problem pydantic found, as `field.path: message`, on one line."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in err.errors())
