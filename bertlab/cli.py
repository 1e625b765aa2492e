"""Shared behaviour of the entry points in scripts/: the one user-error path."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from bertlab.io import UserError

# argparse's own usage errors exit 2 as well, so a caller tells "fix your input" (2) from
# "something broke" (1, or a traceback) by the exit code alone.
USER_ERROR_EXIT = 2


def exit_on_user_error(main: Callable) -> Callable:
    """A config or data mistake is the user's to fix: one line on stderr,
    ``error: FILE:LINE: reason`` or ``error: <config key>: reason``, and exit 2, not a
    traceback. Everything else still raises. Works for Hydra mains and ``main(argv) -> int``."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:  # DataError, ConfigError, DownloadError
            print(f"error: {error}", file=sys.stderr)
            sys.exit(USER_ERROR_EXIT)

    return wrapper


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts: ``--max-words 0`` is a usage error (exit 2), not a traceback."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
