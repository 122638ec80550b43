"""The one exception type for mistakes a user can fix (bad path, wrong shape, unknown hook).

The CLI turns it into a single clear message and a non-zero exit instead of a traceback.
"""


class UserError(Exception):
    """An error caused by input the user controls; its message says what to change."""
