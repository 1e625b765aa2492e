"""Shared behaviour of the entry points in scripts/."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from bertlab.config import ConfigError
from bertlab.io import DataError


def exit_on_user_error(main: Callable) -> Callable:
    """A config or data mistake is the user's to fix: one line on stderr and exit 1, not a
    traceback. Everything else still raises."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except (ConfigError, DataError) as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)

    return wrapper
