"""Errors that end a run with a one-line message instead of a traceback."""


class UserError(Exception):
    """A mistake in how the tool was called: wrong path, unknown model, missing weights."""
