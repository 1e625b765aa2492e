"""File helpers shared by every converter and writer: atomic writes and located errors."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO


class DataError(ValueError):
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
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 would survive the rename; 0666 less the umask is what open() gives.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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
    """Lines of a text file without line ends; tolerates a UTF-8 BOM and CRLF/CR line ends."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataError(path, line, f"not valid UTF-8 ({err.reason})") from None
    # Not str.splitlines(): it also splits on form feeds and U+2028, which are data here.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if both paths name one file (links followed), or would once created."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def ensure_not_inputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]) -> None:
    """Raise :class:`DataError` if an output path is one of the input files: a converter
    never overwrites what it reads."""
    inputs = list(inputs)
    for output in outputs:
        for source in inputs:
            if same_file(output, source):
                raise DataError(output, None, f"output would overwrite input {source}")
