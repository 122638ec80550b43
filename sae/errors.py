"""The one exception type for mistakes a user can fix (bad path, wrong shape, unknown hook).

The CLI turns it into a single clear message and a non-zero exit instead of a traceback.
"""

from pydantic import ValidationError


class UserError(Exception):
    """An error caused by input the user controls; its message says what to change."""


def describe_validation_error(err: ValidationError) -> str:
    """Every problem pydantic found, as `field.path: message`, on one line."""
    problems = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "literal_error":  # say which value was refused, not only what is allowed
            message += f" (got {e['input']!r})"
        problems.append(f"{where + ': ' if where else ''}{message}")
    return "; ".join(problems)
