"""Errors that end a run with a one-line message instead of a traceback."""

import sys
from collections.abc import Callable


class UserError(Exception):
    """A mistake in how the tool was called: wrong path, unknown model, missing weights."""


def exit_code(action: Callable[[], object]) -> int:
    """Run a script's work: 0 when it succeeds; a UserError is one `error: ...` line on stderr and 2."""
    try:
        action()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
