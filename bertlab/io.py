"""File helpers shared by every converter and writer: atomic writes and located errors."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO


class UserError(Exception):
    """A mistake the user fixes (bad data, config, option or download), reported by
    :func:`bertlab.cli.exit_on_user_error` as one line, not a traceback."""


class DataError(UserError, ValueError):
    """Bad input data, located as ``file:line: reason``."""

    def __init__(self, path: str | os.PathLike, line: int | None, reason: str):
        self.path, self.line, self.reason = str(path), line, reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[TextIO]:
    """Write ``path`` through a temp file in the same directory, renamed into place on success.

    On any exception the temp file is removed and ``path`` is left as it was, so a
    reader never sees a half-written file.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(path, None, "is a directory, expected an output file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DataError(path.parent, None, "is not a directory (output directory expected)") from None
    except OSError as err:
        raise DataError(path.parent, None, f"cannot create the output directory: {err.strerror}") from None
    # Not mkstemp: its 0600 would survive the rename; 0666 less the umask is what open() gives.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:
        raise DataError(path, None, f"cannot write: {err.strerror}") from None
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": "\n"}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def umask_mode(path: str | os.PathLike) -> None:
    """Give a file written by a library through a private temp file (Lightning, torch) the
    mode a plain ``open()`` would have: 0666 less the user's umask."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def read_text_lines(path: str | os.PathLike) -> list[str]:
    """Lines of a text file without line ends; tolerates a UTF-8 BOM and CRLF/CR line ends
    (mixed too). A missing file, a directory, a symlink loop, invalid UTF-8 or a NUL byte
    raises a :class:`DataError` naming the file (and line)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(path, None, _describe_os_error(path, err)) from None
    if b"\0" in data:
        # Valid UTF-8, but no text format here has NUL bytes: a binary or corrupt file.
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise DataError(path, line, "NUL byte (a binary file, or not UTF-8 text)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(path, line, f"not valid UTF-8 ({err.reason})") from None
    # Not str.splitlines(): it also splits on form feeds and U+2028, which are data here.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _describe_os_error(path: Path, err: OSError) -> str:
    if isinstance(err, IsADirectoryError) or path.is_dir():
        return "is a directory, expected a file"
    if err.errno == errno.ELOOP:
        return "symlink loop"
    if isinstance(err, FileNotFoundError):
        return "file not found"
    return f"cannot read: {err.strerror or err}"


def check_input_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it is a readable regular file's name, else a :class:`DataError`
    saying what it is instead (missing, a directory, a symlink loop)."""
    path = Path(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "Is a directory")
        path.stat()
    except OSError as err:
        raise DataError(path, None, _describe_os_error(path, err)) from None
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if both paths name one file (links followed), or would once created."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # a symlink loop: RuntimeError up to Python 3.12, OSError after
        return False


def ensure_not_inputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]) -> None:
    """Raise :class:`DataError` if an output path is one of the input files: a converter
    never overwrites what it reads."""
    inputs = list(inputs)
    for output in outputs:
        for source in inputs:
            if same_file(output, source):
                raise DataError(output, None, f"output would overwrite input {source}")
