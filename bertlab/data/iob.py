"""CoNLL-style IOB files <-> NeMo token classification files.

Input: one ``word ... tag`` line per token (first column = word, last column = tag;
columns split on tabs, or on whitespace runs when the line has no tab), a blank or
whitespace-only line between sentences, a ``-DOCSTART-`` line before each document (optional,
as in CoNLL-2003). Tags may use IOB2, IOB1 or IOBES/BILOU; everything is written as IOB2.

NeMo output (``OUT_DIR``): ``text_{split}.txt`` (one sentence a line, words joined by
single spaces), ``labels_{split}.txt`` (one tag per word) and ``label_ids.csv`` (one
label per line, pad label ``O`` first so it gets id 0, the rest sorted: the same file
NeMo's ``get_label_ids`` writes when it builds the mapping from the training labels).
Where the sentences know their documents (``-DOCSTART-`` lines; the NCBI abstracts' PMIDs),
``docs_{split}.txt`` names each sentence's document, one line per sentence: what
``model.dataset.context=document`` reads.
An ``OUT_DIR`` that already holds such a dataset is refused unless ``overwrite``, which
replaces the whole set (split files the new set lacks are removed), never merges into it.

:func:`check_nemo_token_data` validates existing NeMo text/labels pairs before a model is
built (the NER counterpart of the TSV checks).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bertlab.io import DataError, atomic_write, check_input_file, ensure_not_inputs, read_text_lines, same_file

Scheme = Literal["auto", "iob1", "iob2", "iobes"]
SCHEMES: tuple[str, ...] = ("auto", "iob1", "iob2", "iobes")
SPLITS: tuple[str, ...] = ("train", "dev", "test")
INPUT_SUFFIXES: tuple[str, ...] = (".tsv", ".txt", ".conll")
PAD_LABEL = "O"
LABEL_IDS_FILE = "label_ids.csv"

_TAG = re.compile(r"^(?:O|([BIESLU])-(\S+))$")
# IOBES/BILOU prefixes mapped onto IOB2 ones; the chunk structure is then repaired like IOB2.
_TO_IOB2_PREFIX = {"B": "B", "I": "I", "E": "I", "L": "I", "S": "B", "U": "B"}
_SPLIT_ALIASES = {"devel": "dev"}
SPLIT_NAMES: tuple[str, ...] = (*SPLITS, *_SPLIT_ALIASES)  # what a user may name a split


@dataclass(frozen=True)
class Sentence:
    """Words with one tag each; ``lines`` are their source line numbers (empty if not from a
    file); ``document`` names the document the sentence belongs to (None: not known)."""

    words: tuple[str, ...]
    tags: tuple[str, ...]
    lines: tuple[int, ...] = ()
    document: str | None = None


@dataclass
class ConversionStats:
    """Counts for one converted split, for the CLI report."""

    scheme: str = ""
    sentences: int = 0
    tokens: int = 0
    mentions: int = 0
    repaired_starts: int = 0  # I- tags that started an entity in IOB2/IOBES input, made B-
    split_sentences: int = 0  # input sentences cut into pieces because of max_words
    long_unsplit: int = 0  # sentences over max_words with no safe cut, kept whole

    def count(self, sentences: Sequence[Sentence]) -> None:
        self.sentences = len(sentences)
        self.tokens = sum(len(s.words) for s in sentences)
        self.mentions = sum(tag.startswith("B-") for s in sentences for tag in s.tags)


# --- reading -------------------------------------------------------------------------


def read_conll(path: str | Path) -> list[Sentence]:
    """Parse a CoNLL-style file into sentences with raw (unconverted, but validated) tags."""
    path = Path(path)
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    document: str | None = None  # numbered from the -DOCSTART- lines, when the file has them

    def close_sentence() -> None:
        if words:
            sentences.append(Sentence(tuple(words), tuple(tags), tuple(lines), document))
            words.clear()
            tags.clear()
            lines.clear()

    for number, raw in enumerate(read_text_lines(path), start=1):
        line = raw.rstrip()
        if not line.strip():
            close_sentence()
            continue
        columns = line.split("\t") if "\t" in line else line.split()
        if columns[0] == "-DOCSTART-":
            close_sentence()
            document = f"doc{number}"
            continue
        if len(columns) < 2:
            raise DataError(path, number, f"expected 'word<TAB>tag', found one column: {line!r}")
        word, tag = columns[0], columns[-1].strip()
        if not word:
            raise DataError(path, number, "empty word in the first column")
        if any(char.isspace() for char in word):
            # NeMo's text files separate words by whitespace, so this word would become several.
            raise DataError(path, number, f"word contains whitespace: {word!r}")
        if not _TAG.match(tag):
            raise DataError(path, number, f"unknown tag {tag!r} (expected O or B-/I-/E-/S-/L-/U-TYPE)")
        words.append(word)
        tags.append(tag)
        lines.append(number)
    close_sentence()
    return sentences


def detect_scheme(sentences: Iterable[Sentence]) -> str:
    """Guess the tag scheme of a file: ``iobes``, ``iob1`` or ``iob2``.

    IOBES/BILOU if any E-/S-/L-/U- tag occurs. IOB1 if some entity starts with I- and no
    B- tag starts an entity (IOB1 uses B- only between two adjacent same-type entities).
    Otherwise IOB2, whose stray I- starts are then errors to repair.
    """
    i_starts = b_starts = 0
    for sentence in sentences:
        previous = PAD_LABEL
        for tag in sentence.tags:
            if tag[0] in "ESLU":
                return "iobes"
            if tag[0] in "BI" and not _same_type(previous, tag):
                i_starts += tag[0] == "I"
                b_starts += tag[0] == "B"
            previous = tag
    return "iob1" if i_starts and not b_starts else "iob2"


def to_iob2(
    sentences: Sequence[Sentence], path: str | Path, scheme: Scheme = "auto", strict: bool = False
) -> tuple[list[Sentence], ConversionStats]:
    """Convert tags to IOB2. ``path`` only locates errors.

    IOB1 entity-initial I- tags become B- silently; in IOB2/IOBES input they are annotation
    errors: repaired and counted, or a :class:`DataError` when ``strict``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}, expected one of {SCHEMES}")
    resolved = detect_scheme(sentences) if scheme == "auto" else scheme
    stats = ConversionStats(scheme=resolved)
    converted = []
    for sentence in sentences:
        tags: list[str] = []
        previous = PAD_LABEL
        open_type: str | None = None  # IOBES: the type of a B-/I- entity still waiting for its E-
        for index, tag in enumerate(sentence.tags):
            line = sentence.lines[index] if sentence.lines else None
            if open_type is not None and not (tag[0] in "IEL" and tag[2:] == open_type):
                # B-X S-X would otherwise become B-X B-X: a guess at what the annotator meant.
                raise DataError(path, line, f"{tag!r} after {sentence.tags[index - 1]!r}: an IOBES entity "
                                            "must end with E- (a one-word entity is S-)")
            if resolved == "iobes":
                open_type = tag[2:] if tag[0] in "BI" else None
            if tag[0] in "ESLU":
                if resolved != "iobes":
                    raise DataError(path, line, f"tag {tag!r} is not valid in the {resolved.upper()} scheme")
                tag = f"{_TO_IOB2_PREFIX[tag[0]]}{tag[1:]}"
            if tag.startswith("I-") and not _same_type(previous, tag):
                if resolved != "iob1":
                    if strict:
                        raise DataError(path, line, f"{tag!r} starts an entity after {previous!r} (expected B-)")
                    stats.repaired_starts += 1
                tag = f"B-{tag[2:]}"
            tags.append(tag)
            previous = tag
        if open_type is not None:
            line = sentence.lines[-1] if sentence.lines else None
            raise DataError(path, line, f"{sentence.tags[-1]!r} ends the sentence: an IOBES entity must "
                                        "end with E- (a one-word entity is S-)")
        converted.append(dataclasses.replace(sentence, tags=tuple(tags)))
    stats.count(converted)
    return converted, stats


def _same_type(previous: str, tag: str) -> bool:
    """True if ``previous`` is inside an entity of ``tag``'s type (so an I- ``tag`` continues it)."""
    return previous[0] in "BI" and previous[2:] == tag[2:]


def read_iob(
    path: str | Path, scheme: Scheme = "auto", strict: bool = False, max_words: int | None = None
) -> tuple[list[Sentence], ConversionStats]:
    """Read a CoNLL-style file as IOB2 sentences, optionally split to at most ``max_words`` words."""
    sentences, stats = to_iob2(read_conll(path), path, scheme, strict)
    if max_words is not None:
        sentences = split_long_sentences(sentences, max_words, stats)
    return sentences, stats


def split_long_sentences(
    sentences: Sequence[Sentence], max_words: int, stats: ConversionStats | None = None
) -> list[Sentence]:
    """Cut IOB2 sentences longer than ``max_words`` words, only where no entity continues.

    A cut before word ``i`` is safe when its tag is not I-. Each piece is as long as
    possible; where no safe cut lies within ``max_words`` the piece runs on to the next
    safe cut (or the sentence end) and is counted in ``stats.long_unsplit``.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be positive, got {max_words}")
    stats = stats if stats is not None else ConversionStats()
    result: list[Sentence] = []
    for sentence in sentences:
        pieces = _cut_points(sentence.tags, max_words)
        if len(pieces) > 2:
            stats.split_sentences += 1
        for start, end in zip(pieces, pieces[1:]):
            if end - start > max_words:
                stats.long_unsplit += 1
            result.append(
                Sentence(sentence.words[start:end], sentence.tags[start:end], sentence.lines[start:end],
                         sentence.document)
            )
    stats.count(result)
    return result


def _cut_points(tags: Sequence[str], max_words: int) -> list[int]:
    """Boundaries ``[0, ..., len(tags)]`` of the pieces of one sentence."""
    safe = [i for i in range(1, len(tags)) if not tags[i].startswith("I-")]
    points = [0]
    while len(tags) - points[-1] > max_words:
        start = points[-1]
        within = [i for i in safe if start < i <= start + max_words]
        beyond = [i for i in safe if i > start + max_words]
        if within:
            points.append(within[-1])
        elif beyond:
            points.append(beyond[0])
        else:
            break
    points.append(len(tags))
    return points


def read_nemo(text_path: str | Path, labels_path: str | Path,
              documents_path: str | Path | None = None) -> list[Sentence]:
    """Read a NeMo ``text_*.txt`` / ``labels_*.txt`` pair back into sentences, each with its
    document from ``documents_path`` (``docs_*.txt``, one name a line) when given."""
    text_lines = read_text_lines(text_path)
    label_lines = read_text_lines(labels_path)
    if len(text_lines) != len(label_lines):
        raise DataError(labels_path, None, f"{len(label_lines)} lines, but {text_path} has {len(text_lines)} "
                                           "(one line of labels per sentence)")
    documents = read_documents(documents_path, len(text_lines), text_path) if documents_path else None
    sentences = []
    for number, (text, labels) in enumerate(zip(text_lines, label_lines), start=1):
        words, tags = text.split(), labels.split()
        if not words:
            # NeMo reads every line as a sentence; one with no words has nothing to tag.
            raise DataError(text_path, number, "empty line: no words (one sentence per line)")
        if len(words) != len(tags):
            raise DataError(labels_path, number, f"{len(tags)} labels for {len(words)} words in {text_path}")
        for tag in tags:
            if not _TAG.match(tag):
                raise DataError(labels_path, number, f"unknown tag {tag!r}")
        document = documents[number - 1] if documents else None
        sentences.append(Sentence(tuple(words), tuple(tags), (number,) * len(words), document))
    return sentences


def read_documents(path: str | Path, sentences: int, text_path: str | Path) -> list[str]:
    """The document names of a ``docs_*.txt`` file: one per sentence of ``text_path``."""
    names = [line.strip() for line in read_text_lines(path)]
    if len(names) != sentences:
        raise DataError(path, None, f"{len(names)} lines, but {text_path} has {sentences} "
                                    "(one document name per sentence)")
    for number, name in enumerate(names, start=1):
        if not name or any(char.isspace() for char in name):
            raise DataError(path, number, f"expected one document name (no spaces), found {name!r}")
    return names


def document_runs(documents: Sequence[str | None] | None, count: int,
                  keep: Sequence[bool] | None = None) -> list[list[int]]:
    """The indices ``0..count-1`` in runs of consecutive items with one document name
    (``documents`` None: each item alone); items not in ``keep`` are left out and end a run."""
    runs: list[list[int]] = []
    for index in range(count):
        if keep is not None and not keep[index]:
            continue
        if documents is not None and runs and runs[-1][-1] == index - 1 \
                and documents[runs[-1][-1]] == documents[index]:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def check_nemo_token_data(
    data_dir: str | Path,
    files: Mapping[str, tuple[str, ...]],
    train: str = "train_ds",
    labels: Iterable[str] | None = None,
) -> dict[str, int]:
    """Validate NeMo text/labels pairs before a model is built; return sentences per key.

    ``files`` maps a name (a config key such as ``train_ds``) to ``(text_file, labels_file)``
    or ``(text_file, labels_file, documents_file)``, relative to ``data_dir`` as NeMo joins
    them. Checked, as :class:`DataError` with ``file:line``: equal line counts (naming both
    files; the documents file too), one label per word, valid IOB2
    (no ``I-X`` that does not continue ``X``, no IOBES tags), tags within ``labels`` when
    given, no empty split, and no tag outside the ``train`` split in the others:
    NeMo builds its label ids from train and fails on any other tag only after loading
    the model.
    """
    data_dir = Path(data_dir)
    allowed = set(labels) if labels is not None else None
    read: dict[str, tuple[Path, list[Sentence]]] = {}
    for name, (text_file, labels_file, *documents_file) in files.items():
        text_path, labels_path = data_dir / text_file, data_dir / labels_file
        documents_path = data_dir / documents_file[0] if documents_file and documents_file[0] else None
        sentences = read_nemo(text_path, labels_path, documents_path)
        if not sentences:
            raise DataError(labels_path, None, f"no sentences (empty {name} split)")
        for sentence in sentences:
            _check_iob2(labels_path, sentence, allowed)
        read[name] = (labels_path, sentences)
    if train in read:
        train_path, train_sentences = read[train]
        known = {tag for sentence in train_sentences for tag in sentence.tags}
        for labels_path, sentences in read.values():
            for sentence in sentences:
                unknown = next((tag for tag in sentence.tags if tag not in known), None)
                if unknown is not None:
                    raise DataError(labels_path, sentence.lines[0],
                                    f"tag {unknown!r} does not occur in the train split ({train_path})")
    return {name: len(sentences) for name, (_, sentences) in read.items()}


def _check_iob2(path: Path, sentence: Sentence, allowed: set[str] | None) -> None:
    previous = PAD_LABEL
    line = sentence.lines[0] if sentence.lines else None
    for position, tag in enumerate(sentence.tags, start=1):
        if allowed is not None and tag not in allowed:
            raise DataError(path, line, f"tag {tag!r} (word {position}) is not one of {sorted(allowed)}")
        if tag[0] not in "OBI":
            raise DataError(path, line, f"tag {tag!r} (word {position}) is not IOB2 (convert it with "
                                        "scripts/iob_to_nemo.py)")
        if tag.startswith("I-") and not _same_type(previous, tag):
            raise DataError(path, line, f"tag {tag!r} (word {position}) after {previous!r}: an IOB2 entity "
                                        "starts with B-")
        previous = tag


# --- writing -------------------------------------------------------------------------


def dataset_files(out_dir: str | Path, splits: Iterable[str] = SPLITS, documents: bool = True) -> list[Path]:
    """The files of a NeMo token-classification dataset: text, labels (and with ``documents``
    the document names) per split, then the label ids."""
    out_dir = Path(out_dir)
    kinds = ("text", "labels", "docs") if documents else ("text", "labels")
    return [*(out_dir / f"{kind}_{split}.txt" for split in splits for kind in kinds), out_dir / LABEL_IDS_FILE]


def write_nemo_dataset(
    splits: dict[str, Sequence[Sentence]],
    out_dir: str | Path,
    inputs: Iterable[str | Path] = (),
    overwrite: bool = False,
) -> list[Path]:
    """Write ``text_/labels_{split}.txt`` for each split (and ``docs_{split}.txt`` when the
    sentences know their documents) and ``label_ids.csv`` from their labels.

    Nothing is written if any output path is one of ``inputs``, or if ``out_dir`` already
    holds a dataset and not ``overwrite``: keeping an old ``label_ids.csv`` or an old split
    beside new ones would mix two datasets. With ``overwrite`` the old set is replaced whole.
    """
    out_dir = Path(out_dir)
    inputs = list(inputs)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(out_dir, None, "is not a directory (output directory expected)")
    with_documents = all(s.document is not None for sentences in splits.values() for s in sentences)
    outputs = dataset_files(out_dir, splits, documents=with_documents)
    label_ids_path = outputs[-1]
    ensure_not_inputs(outputs, inputs)
    existing = [path for path in dataset_files(out_dir) if path.exists() or path.is_symlink()]
    if existing and not overwrite:
        names = ", ".join(path.name for path in existing)
        raise DataError(out_dir, None, f"already holds a NeMo dataset ({names}); "
                                       "give --overwrite to replace it, or another output directory")
    labels = {tag for sentences in splits.values() for s in sentences for tag in s.tags}
    for split, sentences in splits.items():
        with atomic_write(out_dir / f"text_{split}.txt") as text_file:
            text_file.writelines(" ".join(s.words) + "\n" for s in sentences)
        with atomic_write(out_dir / f"labels_{split}.txt") as labels_file:
            labels_file.writelines(" ".join(s.tags) + "\n" for s in sentences)
        if with_documents:
            with atomic_write(out_dir / f"docs_{split}.txt") as documents_file:
                documents_file.writelines(f"{s.document}\n" for s in sentences)
    with atomic_write(label_ids_path) as label_ids_file:
        # No final newline, byte-identical to the file NeMo rewrites when training starts.
        label_ids_file.write("\n".join(label_order(labels)))
    for stale in existing:
        if stale not in outputs and not any(same_file(stale, source) for source in inputs):
            stale.unlink()
    return outputs


def label_order(labels: Iterable[str]) -> list[str]:
    """NeMo's id order: the pad label ``O`` first (id 0), then the others sorted."""
    return [PAD_LABEL, *sorted(set(labels) - {PAD_LABEL})]


def write_conll(
    sentences: Sequence[Sentence],
    path: str | Path,
    predictions: Sequence[Sentence] | None = None,
    inputs: Iterable[str | Path] = (),
) -> None:
    """Write ``word<TAB>tag`` lines (``word<TAB>gold<TAB>pred`` with predictions), a blank line after each sentence."""
    ensure_not_inputs([Path(path)], inputs)
    if predictions is not None and len(predictions) != len(sentences):
        raise DataError(path, None, f"{len(predictions)} predicted sentences for {len(sentences)} gold ones")
    with atomic_write(path) as handle:
        for index, sentence in enumerate(sentences):
            columns: list[Sequence[str]] = [sentence.words, sentence.tags]
            if predictions is not None:
                predicted = predictions[index]
                if len(predicted.tags) != len(sentence.words):
                    raise DataError(
                        path, None, f"sentence {index + 1}: {len(predicted.tags)} predicted tags "
                        f"for {len(sentence.words)} words"
                    )
                columns.append(predicted.tags)
            handle.writelines("\t".join(row) + "\n" for row in zip(*columns))
            handle.write("\n")


def nemo_to_conll(
    text_path: str | Path, labels_path: str | Path, out_path: str | Path, pred_path: str | Path | None = None
) -> int:
    """NeMo text/labels (gold) and optional predicted labels -> CoNLL file. Returns the sentence count."""
    gold = read_nemo(text_path, labels_path)
    predictions = read_nemo(text_path, pred_path) if pred_path is not None else None
    inputs = [p for p in (text_path, labels_path, pred_path) if p is not None]
    write_conll(gold, out_path, predictions, inputs=inputs)
    return len(gold)


# --- whole files and directories -----------------------------------------------------


def split_name(path: str | Path) -> str | None:
    """``train``/``dev``/``test`` for a file named like ``train.tsv`` or ``devel.conll``, else None."""
    path = Path(path)
    if path.suffix not in INPUT_SUFFIXES:
        return None
    name = _SPLIT_ALIASES.get(path.stem, path.stem)
    return name if name in SPLITS else None


def find_split_files(src: str | Path) -> dict[str, Path]:
    """The train/dev(el)/test files of a directory, keyed by NeMo split name."""
    src = Path(src)
    found: dict[str, Path] = {}
    for path in sorted(src.iterdir()):
        split = split_name(path) if path.is_file() else None
        if split is None:
            continue
        if split in found:
            raise DataError(src, None, f"two files for split {split!r}: {found[split].name}, {path.name}")
        found[split] = path
    if not found:
        raise DataError(src, None, f"no train/dev/devel/test file with an ending in {INPUT_SUFFIXES}")
    return {split: found[split] for split in SPLITS if split in found}


def check_splits(splits: dict[str, Sequence[Sentence]], sources: dict[str, str | Path]) -> None:
    """Every split has a sentence, and dev/test use only tags that train has (NeMo builds its
    label ids from train and fails on any other tag only once the model is built).
    ``sources`` names each split's file for the error."""
    for split, sentences in splits.items():
        if not sentences:
            raise DataError(sources[split], None, f"no sentences for the {split} split (empty file?)")
    if "train" not in splits:
        return
    known = {tag for sentence in splits["train"] for tag in sentence.tags}
    for split, sentences in splits.items():
        for sentence in sentences:
            for index, tag in enumerate(sentence.tags):
                if tag not in known:
                    line = sentence.lines[index] if sentence.lines else None
                    raise DataError(sources[split], line,
                                    f"tag {tag!r} does not occur in the train split ({sources['train']})")


def convert_files(
    files: dict[str, Path],
    out_dir: str | Path,
    scheme: Scheme = "auto",
    strict: bool = False,
    max_words: int | None = None,
    overwrite: bool = False,
) -> dict[str, ConversionStats]:
    """Read and check every split first, then write, so a bad file leaves no partial output."""
    converted = {split: read_iob(path, scheme, strict, max_words) for split, path in files.items()}
    splits = {split: sentences for split, (sentences, _) in converted.items()}
    check_splits(splits, files)
    write_nemo_dataset(splits, out_dir, files.values(), overwrite)
    return {split: stats for split, (_, stats) in converted.items()}


def convert_corpus_dir(
    src: str | Path,
    out_dir: str | Path,
    scheme: Scheme = "auto",
    strict: bool = False,
    max_words: int | None = None,
    overwrite: bool = False,
) -> dict[str, ConversionStats]:
    """Convert a directory's train/dev(el)/test CoNLL files to NeMo format in ``out_dir``."""
    return convert_files(find_split_files(src), out_dir, scheme, strict, max_words, overwrite)


def convert_file(
    path: str | Path,
    out_dir: str | Path,
    split: str | None = None,
    scheme: Scheme = "auto",
    strict: bool = False,
    max_words: int | None = None,
    overwrite: bool = False,
) -> ConversionStats:
    """Convert one CoNLL file; ``split`` defaults to the one its name implies."""
    path = check_input_file(path)
    split = _SPLIT_ALIASES.get(split, split) if split else split_name(path)
    if split is None:
        raise DataError(path, None, f"cannot tell the split from the file name (expected train, dev, devel or "
                                    f"test ending in {', '.join(INPUT_SUFFIXES)}); name the split")
    if split not in SPLITS:
        raise DataError(path, None, f"unknown split {split!r} (expected one of {', '.join(SPLIT_NAMES)})")
    return convert_files({split: path}, out_dir, scheme, strict, max_words, overwrite)[split]
