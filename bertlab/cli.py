"""Shared behaviour of the entry points in scripts/: the one user-error path."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path

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


def check_overrides(config_dir: str | Path, config_name: str, argv: list[str] | None = None) -> None:
    """Compose the config with the command line's overrides before Hydra does: Hydra reports
    an unknown key, a bad value syntax or an unknown group option itself, in several lines and
    with status 1; here it is one line ``error: ...`` and status 2, like every user error.
    Multirun sweeps (``a=1,2``) and Hydra's own settings are left to Hydra."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser  # Hydra's own command line, options and all
    from hydra.errors import HydraException

    args, _ = get_args_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.multirun or args.help or args.hydra_help or args.shell_completion:
        return
    overrides = [arg for arg in args.overrides if not arg.lstrip("+~").startswith("hydra")]
    try:
        with initialize_config_dir(config_dir=str(Path(args.config_dir or config_dir).resolve()),
                                   version_base="1.3"):
            compose(config_name=args.config_name or config_name, overrides=overrides)
    except HydraException as error:
        # Hydra's message spans lines: the space-indented ones repeat the key and node type,
        # the search path and the grammar link are noise here.
        text = str(error).split("Config search path:")[0]
        lines = [line.strip() for line in text.splitlines()
                 if line.strip() and not line.startswith(" ") and not line.startswith("See https://")]
        where = f"{error.override}: " if getattr(error, "override", None) else ""
        print(f"error: {where}{' '.join(lines)}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
