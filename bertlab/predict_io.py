"""Inputs and outputs of ``scripts/predict.py``: read texts, write predictions.

Inputs (files or standard input), one item per line unless CoNLL:
- ``text``: one text per line;
- ``jsonl``: one JSON object per line with a ``text`` field; the other fields are passed
  through to the output;
- ``conll`` (NER only): pre-tokenized, one token per line (first column), a blank line
  between sentences; a ``-DOCSTART-`` line starts a document, whose sentences a model
  trained with document context reads together (a text line is its own document).

Each line is decoded on its own, so invalid UTF-8 or an over-long line costs that line
only (an output record with an ``error``, a message on stderr), not the batch. Empty lines
stay in place as empty predictions.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bertlab.io import DataError, atomic_write, ensure_not_inputs
from bertlab.long_text import kept_subtokens

INPUT_FORMATS = ("auto", "text", "jsonl", "conll")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".conll": "conll", ".iob": "conll", ".bio": "conll"}
STDIN = "<stdin>"


@dataclass
class Item:
    """One input to predict: raw ``text`` or pre-tokenized ``words``, located for messages."""

    source: str
    line: int
    text: str = ""
    words: tuple[str, ...] | None = None
    fields: dict = field(default_factory=dict)  # JSONL fields passed through
    error: str | None = None
    document: str | None = None  # CoNLL: from the last -DOCSTART- line (for document-context models)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


# --- reading ---------------------------------------------------------------------------


def decoded_lines(data: bytes) -> Iterator[tuple[int, str | None, str | None]]:
    """``(line number, text, error)`` per line; a line that is not UTF-8 has text None."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        try:
            yield number, raw.removesuffix(b"\r").decode("utf-8"), None
        except UnicodeDecodeError as err:
            yield number, None, f"not valid UTF-8 (byte {err.start + 1} of the line: {err.reason}); line skipped"


def input_format(path: str, data: bytes, requested: str = "auto") -> str:
    """The requested format, else by file suffix, else JSONL when the first non-empty line
    is a JSON object, else text."""
    if requested != "auto":
        return requested
    suffix_format = _SUFFIX_FORMATS.get(Path(path).suffix.lower()) if path != STDIN else None
    if suffix_format:
        return suffix_format
    first = next((line.strip() for line in data.split(b"\n") if line.strip()), b"")
    if first.startswith(b"{"):
        try:
            if isinstance(json.loads(first), dict):
                return "jsonl"
        except ValueError:
            pass
    return "text"


def read_items(paths: Sequence[str], requested: str = "auto", stdin=None) -> list[Item]:
    """Every input item of ``paths`` in order; ``-`` or no path reads standard input."""
    items: list[Item] = []
    for path in paths or ["-"]:
        if path == "-":
            source, data = STDIN, (stdin or sys.stdin.buffer).read()
        else:
            if not Path(path).is_file():
                raise DataError(path, None, "input file not found")
            source, data = path, Path(path).read_bytes()
        fmt = input_format(source, data, requested)
        reader = {"text": _text_items, "jsonl": _jsonl_items, "conll": _conll_items}[fmt]
        items.extend(reader(source, data))
    return items


def _text_items(source: str, data: bytes) -> Iterator[Item]:
    for number, text, error in decoded_lines(data):
        yield Item(source, number, text or "", error=error)


def _jsonl_items(source: str, data: bytes) -> Iterator[Item]:
    for number, line, error in decoded_lines(data):
        if error or not (line or "").strip():
            yield Item(source, number, error=error)
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            yield Item(source, number, error=f"not valid JSON ({err})")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            yield Item(source, number, error='expected a JSON object with a string "text" field')
            continue
        fields = {k: v for k, v in record.items() if k != "text"}
        yield Item(source, number, record["text"], fields=fields)


def _conll_items(source: str, data: bytes) -> Iterator[Item]:
    words: list[str] = []
    start, error, document = 0, None, None
    for number, line, line_error in decoded_lines(data):
        if line is not None and not line.strip():
            if words or error:
                yield Item(source, start, words=tuple(words), error=error, document=document)
            words, start, error = [], 0, None
            continue
        start = start or number
        if line_error:
            error = error or f"line {number}: {line_error}"
            continue
        token = line.split("\t")[0].strip() if "\t" in line else line.split()[0]
        if token != "-DOCSTART-":
            words.append(token)
        elif not words:
            start, document = 0, f"{source}:{number}"
    if words or error:
        yield Item(source, start, words=tuple(words), error=error, document=document)


# --- writing ---------------------------------------------------------------------------


def inline_tags(result, outside: str = "O") -> str:
    """The text with ``[TAG]`` after every tagged word, like NeMo's ``add_predictions``
    (spacing and punctuation of the input kept)."""
    pieces, position = [], 0
    for (_, end), tag in zip(result.offsets, result.tags):
        if tag != outside:
            pieces.append(result.text[position:end] + f"[{tag}]")
            position = end
    pieces.append(result.text[position:])
    return "".join(pieces)


def classification_record(item: Item, result, class_names: Sequence[str]) -> dict:
    record = {**item.fields, "text": item.text, "label": result.label, "class_name": result.class_name,
              "probabilities": dict(zip(class_names, (round(p, 6) for p in result.probabilities)))}
    if result.truncated:
        record["truncated"] = True
    if result.chunks > 1:
        record["chunks"] = result.chunks
    if result.error:
        record["error"] = result.error
    return record


def tagging_record(item: Item, result) -> dict:
    record = {**item.fields, "text": result.text,
              "spans": [{"start": s.start, "end": s.end, "label": s.label, "text": s.text} for s in result.spans]}
    if item.words is not None:
        record["tokens"] = list(result.words)
        record["tags"] = list(result.tags)
    if result.windows > 1:
        record["windows"] = result.windows
    if result.error:
        record["error"] = result.error
    return record


def format_lines(task: str, fmt: str, items: Sequence[Item], results: Sequence,
                 class_names: Sequence[str] = ()) -> Iterator[str]:
    """Output lines (with their newlines), one record per item, in input order."""
    for item, result in zip(items, results):
        if task == "text_classification" and fmt == "tsv":
            probabilities = "\t".join(f"{p:.6f}" for p in result.probabilities) or "\t" * (len(class_names) - 1)
            label = "" if result.label is None else str(result.label)
            yield f"{label}\t{result.class_name or ''}\t{probabilities}\n"
        elif task == "text_classification":
            yield json.dumps(classification_record(item, result, class_names), ensure_ascii=False) + "\n"
        elif fmt == "conll":
            yield "".join(f"{word}\t{tag}\n" for word, tag in zip(result.words, result.tags)) + "\n"
        elif fmt == "inline":
            yield inline_tags(result) + "\n"
        else:
            yield json.dumps(tagging_record(item, result), ensure_ascii=False) + "\n"


def tsv_header(class_names: Sequence[str]) -> str:
    return "\t".join(["label", "class_name", *(f"p_{name}" for name in class_names)]) + "\n"


def write_lines(lines: Iterable[str], output: str | Path | None, stdout: TextIO | None = None) -> None:
    """To ``output`` atomically (a reader never sees half a file), or to standard output."""
    if output is None:
        (stdout or sys.stdout).writelines(lines)
        return
    with atomic_write(output) as handle:
        handle.writelines(lines)


# --- the whole command -----------------------------------------------------------------


def messages(items: Sequence[Item], results: Sequence, max_seq_length: int, long_text: str = "head") -> list[str]:
    """One line per failed input, and a count of the inputs longer than max_seq_length."""
    lines = [f"{item.where}: {result.error}" for item, result in zip(items, results) if result.error]
    cut = sum(bool(getattr(r, "truncated", False)) for r in results)
    chunked = sum(getattr(r, "chunks", 1) > 1 for r in results)
    windowed = sum(getattr(r, "windows", 1) > 1 for r in results)
    if cut:
        lines.append(f"{cut} of {len(results)} inputs longer than max_seq_length={max_seq_length} subtokens "
                     f"were truncated (classified on {kept_subtokens(long_text, max_seq_length - 2)})")
    if chunked:
        lines.append(f"{chunked} of {len(results)} inputs longer than max_seq_length={max_seq_length} subtokens "
                     f"were classified in {kept_subtokens(long_text, max_seq_length - 2)}")
    if windowed:
        lines.append(f"{windowed} of {len(results)} inputs longer than max_seq_length={max_seq_length} subtokens "
                     f"were tagged in overlapping windows")
    return lines


def _check_format(spec, fmt: str, output: str | Path | None) -> None:
    if fmt not in spec.output_formats:
        raise DataError(output or "<stdout>", None, f"--format {fmt} is not for {spec.name} models "
                                                    f"(choose from {', '.join(spec.output_formats)})")


def check_prediction_args(model: str | Path, inputs: Sequence[str], output: str | Path | None,
                          fmt: str | None) -> None:
    """What ``scripts/predict.py`` checks before the 20 s model load: a bertlab model whose task
    takes ``fmt``, input files that exist, and an output that is none of them."""
    from bertlab.restore import model_spec

    _, spec = model_spec(model)
    if fmt is not None:
        _check_format(spec, fmt, output)
    files = [path for path in inputs if path != "-"]
    for path in files:
        if Path(path).is_dir():
            raise DataError(path, None, "is a directory, not an input file")
        if not Path(path).is_file():
            raise DataError(path, None, "input file not found")
    if output is not None:
        ensure_not_inputs([output], [*files, model])


def predict_files(predictor, inputs: Sequence[str], output: str | Path | None = None, fmt: str | None = None,
                  input_fmt: str = "auto", stdin=None, stdout: TextIO | None = None,
                  stderr: TextIO | None = None) -> int:
    """Read ``inputs``, predict, write ``output`` (or stdout); returns how many inputs failed."""
    spec = predictor.spec
    fmt = fmt or spec.output_formats[0]
    _check_format(spec, fmt, output)
    items = read_items(inputs, input_fmt, stdin=stdin)
    if spec.predict == "classify" and any(item.words is not None for item in items):
        raise DataError(items[0].source, None, "CoNLL input is for NER models; give classification texts "
                                               "one per line or as JSONL")
    results = _predict_items(predictor, items)
    class_names = predictor.class_names if spec.predict == "classify" else ()
    lines = format_lines(spec.name, fmt, items, results, class_names)
    if spec.predict == "classify" and fmt == "tsv":
        lines = [tsv_header(class_names), *lines]
    write_lines(lines, output, stdout)
    report = messages(items, results, predictor.max_seq_length, predictor.long_text)
    for line in report:
        print(line, file=stderr or sys.stderr)
    return sum(bool(result.error) for result in results)


def _predict_items(predictor, items: Sequence[Item]) -> list:
    """Predict the items that read well; a failed item gets an empty result with its error."""
    from bertlab.predict import Classification, Tagged

    inputs = [(item.words if item.words is not None else item.text) if not item.error else "" for item in items]
    documents = [item.document for item in items]
    results = (predictor.tag(inputs, documents) if predictor.spec.predict == "tag" and any(documents)
               else predictor.predict(inputs))
    for index, item in enumerate(items):
        if item.error:
            results[index] = (Classification(None, None, error=item.error) if predictor.spec.predict == "classify"
                              else Tagged(item.text, error=item.error))
    return results
