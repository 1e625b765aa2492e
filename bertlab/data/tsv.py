"""Labeled ``text<TAB>label`` TSV files: validate, drop a header row, write NeMo's format.

NeMo's text-classification data is one ``text<TAB>integer label`` row per line with no
header. This replaces the course's ``sed 1d``: the header is detected (a first row whose
label column is a column name such as ``label``, see :data:`LABEL_COLUMN_NAMES`) rather
than assumed, and every row is checked, so a file without a header loses no data and a
bad row (``hello<TAB>one`` in the first line included) fails loudly as ``file:line: reason``.
A label followed by spaces or tabs (``2  ``, as in the NeMo course's own ``test.tsv``,
which NeMo reads as 2) is that label; trailing empty lines at the end of the file are
ignored; an empty or header-only file is an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bertlab.io import DataError, atomic_write, ensure_not_inputs, read_text_lines, same_file

NEMO_SUFFIX = "_nemo_format"
# ASCII digits only: int(), and so NeMo, also takes "٣" or "1_0"; in a label column those are typos.
_INTEGER = re.compile(r"[+-]?[0-9]+")
# Names a header row gives the label column (compared lower-cased). A first row with any other
# non-integer label is a bad data row, not a header: "hello<TAB>one" must not vanish silently.
LABEL_COLUMN_NAMES = frozenset({"label", "labels", "class", "class_id", "category", "target", "y", "gold"})


@dataclass(frozen=True)
class LabeledTsv:
    """The validated rows of one TSV file."""

    path: Path
    rows: list[tuple[str, int]]
    header_removed: bool


@dataclass(frozen=True)
class StripResult:
    input_path: Path
    output_path: Path
    rows_written: int
    header_removed: bool


def read_labeled_tsv(path: str | os.PathLike, num_classes: int | None = None) -> LabeledTsv:
    """Rows of a ``text<TAB>label`` file, without its header row if it has one."""
    path = Path(path)
    lines = read_text_lines(path)
    while lines and lines[-1] == "":  # blank lines after the last row (an editor's extra newline)
        lines.pop()
    if not lines:
        raise DataError(path, None, "empty file: no text<TAB>label rows")
    rows: list[tuple[str, int]] = []
    header_removed = False
    # A plain split, not the csv module: with quoting off csv adds nothing but a field-size
    # limit (128 KiB) that a long abstract can pass. Quotes are ordinary text characters.
    for number, line in enumerate(lines, start=1):
        fields = _drop_trailing_blank_columns(line.split("\t"))
        if number == 1 and _is_header(fields):
            header_removed = True
            continue
        rows.append(_parse_row(path, number, fields, num_classes))
    if not rows:
        raise DataError(path, 1, "header row only, no data rows")
    return LabeledTsv(path, rows, header_removed)


def _drop_trailing_blank_columns(fields: list[str]) -> list[str]:
    """``text<TAB>2<TAB>`` and ``text<TAB>2  `` are ``text``, ``2``: NeMo strips each line."""
    while len(fields) > 2 and not fields[-1].strip():
        fields.pop()
    if len(fields) == 2:
        fields[1] = fields[1].rstrip()
    return fields


def _is_header(fields: list[str]) -> bool:
    """Two columns, non-empty text and a label column name, like ``sentence<TAB>label``."""
    return len(fields) == 2 and bool(fields[0].strip()) and fields[1].strip().lower() in LABEL_COLUMN_NAMES


def _parse_row(path: Path, number: int, fields: list[str], num_classes: int | None) -> tuple[str, int]:
    if fields == [""]:
        raise DataError(path, number, "empty line")
    if len(fields) < 2:
        raise DataError(path, number, "no tab: expected text<TAB>label")
    if len(fields) > 2:
        raise DataError(path, number, f"{len(fields)} tab-separated columns, expected 2 (text<TAB>label)")
    text, label = fields
    if not text.strip():
        raise DataError(path, number, "empty text")
    if not _INTEGER.fullmatch(label):
        hint = (f" (a header row's label column is one of: {', '.join(sorted(LABEL_COLUMN_NAMES))})"
                if number == 1 else "")
        raise DataError(path, number, f"label {label!r} is not an integer{hint}")
    value = int(label)
    if value < 0 or (num_classes is not None and value >= num_classes):
        allowed = f"[0, {num_classes})" if num_classes is not None else ">= 0"
        raise DataError(path, number, f"label {value} out of range {allowed}")
    return text, value


def nemo_output_path(input_path: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Path:
    """``<stem>_nemo_format.tsv`` beside the input, or in ``out_dir``."""
    input_path = Path(input_path)
    directory = Path(out_dir) if out_dir is not None else input_path.parent
    return directory / f"{input_path.stem}{NEMO_SUFFIX}.tsv"


def write_nemo_tsv(rows: Iterable[tuple[str, int]], out_path: str | os.PathLike) -> int:
    """Write headerless ``text<TAB>label`` rows atomically; return how many."""
    count = 0
    with atomic_write(out_path) as handle:
        for text, label in rows:
            handle.write(f"{text}\t{label}\n")
            count += 1
    return count


def plan_outputs(
    input_paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike | None = None
) -> dict[Path, Path]:
    """Output path per input; refuses to overwrite an input or to write two inputs to one file."""
    inputs = [Path(p) for p in input_paths]
    plan = {path: nemo_output_path(path, out_dir) for path in inputs}
    for source, target in plan.items():
        ensure_not_inputs([target], inputs)
        for other, other_target in plan.items():
            if other != source and same_file(target, other_target):
                raise DataError(source, None, f"output {target} is also the output of {other}")
    return plan


def strip_tsv_headers(
    input_paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    num_classes: int | None = None,
) -> list[StripResult]:
    """Convert each input to ``<stem>_nemo_format.tsv``.

    All inputs are validated before any output is written, so a bad row anywhere leaves
    every output as it was.
    """
    plan = plan_outputs(input_paths, out_dir)
    tables = [read_labeled_tsv(source, num_classes) for source in plan]
    return [
        StripResult(table.path, plan[table.path], write_nemo_tsv(table.rows, plan[table.path]), table.header_removed)
        for table in tables
    ]


def strip_tsv_header(
    input_path: str | os.PathLike, out_dir: str | os.PathLike | None = None, num_classes: int | None = None
) -> StripResult:
    """Convert one input to ``<stem>_nemo_format.tsv`` (see :func:`strip_tsv_headers`)."""
    return strip_tsv_headers([input_path], out_dir, num_classes)[0]
