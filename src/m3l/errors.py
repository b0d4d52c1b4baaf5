"""Errors that end a run with a one-line message instead of a traceback, and the one-line reason an item's
error gives in a log (`describe`)."""

import signal
import sys
from collections.abc import Callable


class UserError(Exception):
    """A mistake in how the tool was called: wrong path, unknown model, missing weights."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, as a job scheduler sends before killing: stop as cleanly as on Ctrl-C."""


def describe(error: BaseException) -> str:
    """A one-line reason for a log: the message of expected errors, the type of the others."""
    message = " ".join(str(error).split())
    if isinstance(error, (OSError, ValueError)) and message:
        return message
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def exit_code(action: Callable[[], object]) -> int:
    """Run a script's work: 0 when it succeeds; a UserError is one `error: ...` line on stderr and 2."""
    try:
        action()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def stoppable_exit_code(action: Callable[[], object], interrupted: str) -> int:
    """`exit_code`, with SIGTERM handled as Ctrl-C: either prints `interrupted` and gives 130 (SIGINT) or
    143 (SIGTERM)."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return exit_code(action)
    except KeyboardInterrupt as stop:
        print(interrupted, file=sys.stderr)
        return 143 if isinstance(stop, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
