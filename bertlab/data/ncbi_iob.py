"""NCBI Disease corpus (original release format) -> IOB2 sentences.

Tokenization follows the CoNLL release (github.com/spyysalo/ncbi-disease): a token is
a run of letters and digits, or any other single non-space character (punctuation,
``_`` included). The title is its own sentence; the abstract is split after ``.``,
``?`` or ``!`` followed by whitespace and a capital letter or digit, except where
that point lies inside a mention. A mention whose edge falls inside a token (the
release has ``disorde`` for ``disorder``) gets the token split at that edge.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bertlab.data.download import ORIGINAL_FILENAMES
from bertlab.data.iob import ConversionStats, Sentence, read_iob, split_long_sentences, write_conll
from bertlab.data.ncbi_corpus import Abstract, Mention, read_corpus, unique_by_pmid
from bertlab.io import DataError

TOKEN = re.compile(r"[^\W_]+|\S")
SENTENCE_END = re.compile(r"[.?!](?=\s+[A-Z0-9])")
DEFAULT_TYPE = "Disease"
# Sentences and mentions in the CoNLL release that NeMo's tutorial uses (conll/*.tsv);
# its train mentions include PMID 8528200 twice.
CONLL_RELEASE_COUNTS = {"train": (5432, 5145), "dev": (923, 787), "test": (940, 960)}

Span = tuple[int, int]


@dataclass
class NcbiStats(ConversionStats):
    """Conversion counts plus what the original corpus needed fixing."""

    abstracts: int = 0
    split_tokens: int = 0  # mentions with an edge inside a token, which was split there
    duplicate_pmids: list[str] = field(default_factory=list)  # repeated abstracts dropped


def tokenize(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Character spans of the tokens of ``text[start:end]`` (offsets into ``text``)."""
    end = len(text) if end is None else end
    return [match.span() for match in TOKEN.finditer(text, start, end)]


def sentence_spans(abstract: Abstract) -> list[Span]:
    """Title, then the abstract's sentences, as spans of ``abstract.text``."""
    text, body_start = abstract.text, len(abstract.title) + 1
    cuts = [
        match.end()
        for match in SENTENCE_END.finditer(text, body_start)
        if not any(m.start < match.end() < m.end for m in abstract.mentions)
    ]
    bounds = [body_start, *cuts, len(text)]
    return [(0, len(abstract.title)), *zip(bounds, bounds[1:])]


def abstract_to_sentences(
    abstract: Abstract, path: str | Path, keep_types: bool, stats: NcbiStats
) -> list[Sentence]:
    """Tokenize and tag one abstract; ``path`` locates errors."""
    text = abstract.text
    mentions = sorted(abstract.mentions, key=lambda m: (m.start, m.end))
    for first, second in zip(mentions, mentions[1:]):
        if second.start < first.end:
            raise DataError(path, abstract.line, f"overlapping mentions {first.text!r} and {second.text!r}")
    sentences, placed = [], 0
    for start, end in sentence_spans(abstract):
        inside = [m for m in mentions if start <= m.start and m.end <= end]
        placed += len(inside)
        tokens = _split_at_mention_edges(tokenize(text, start, end), inside, stats)
        if tokens:
            tags = _tag_tokens(tokens, inside, keep_types)
            sentences.append(Sentence(tuple(text[s:e] for s, e in tokens), tags, document=abstract.pmid))
    if placed != len(mentions):
        raise DataError(path, abstract.line, f"PMID {abstract.pmid}: a mention crosses the title/abstract boundary")
    return sentences


def _split_at_mention_edges(tokens: list[Span], mentions: list[Mention], stats: NcbiStats) -> list[Span]:
    """Cut tokens where a mention starts or ends inside them, counting such mentions."""
    edges = {edge for m in mentions for edge in (m.start, m.end)}
    stats.split_tokens += sum(
        any(s < m.start < e or s < m.end < e for s, e in tokens) for m in mentions
    )
    result = []
    for start, end in tokens:
        points = [start, *sorted(edge for edge in edges if start < edge < end), end]
        result.extend(zip(points, points[1:]))
    return result


def _tag_tokens(tokens: list[Span], mentions: list[Mention], keep_types: bool) -> tuple[str, ...]:
    """IOB2 tags: B- on a mention's first token, I- on the rest it covers."""
    tags = ["O"] * len(tokens)
    for mention in mentions:
        entity = mention.type if keep_types else DEFAULT_TYPE
        covered = [i for i, (s, e) in enumerate(tokens) if mention.start <= s and e <= mention.end]
        for position, index in enumerate(covered):
            tags[index] = f"{'B' if position == 0 else 'I'}-{entity}"
    return tuple(tags)


def with_documents(sentences: Sequence[Sentence], abstracts: Sequence[Abstract], path: str | Path) -> list[Sentence]:
    """``sentences`` (a CoNLL release of the corpus, abstracts in any order, each abstract's
    sentences in a row) with each one's abstract's PMID as its document.

    The CoNLL release keeps every character of title and abstract (only the spaces and the
    sentence and token cuts differ), so an abstract starts at the sentence where its text,
    spaces removed, begins; a sentence that lies in no abstract is a DataError at its line.
    A repeated abstract (the train release has PMID 8528200 twice) is named ``PMID#2``.
    """
    by_start: dict[str, list[tuple[str, str]]] = {}
    for abstract in abstracts:
        text = "".join(abstract.text.split())
        by_start.setdefault(text[:_KEY_CHARS], []).append((text, abstract.pmid))
    pieces = ["".join(s.words) for s in sentences]
    result: list[Sentence] = []
    seen: Counter[str] = Counter()
    index = 0
    while index < len(sentences):
        following = "".join(pieces[index:index + _KEY_SENTENCES])
        match = next((m for m in by_start.get(following[:_KEY_CHARS], []) if _starts(pieces, index, m[0])), None)
        if match is None:
            line = sentences[index].lines[0] if sentences[index].lines else None
            raise DataError(path, line, "this sentence does not start any abstract of the original corpus "
                                        "(and follows no abstract it continues)")
        text, pmid = match
        seen[pmid] += 1
        name = pmid if seen[pmid] == 1 else f"{pmid}#{seen[pmid]}"
        covered = 0
        while covered < len(text):
            covered += len(pieces[index])
            result.append(dataclasses.replace(sentences[index], document=name))
            index += 1
    return result


_KEY_CHARS = 40  # an abstract's first characters (spaces removed) find its candidates
_KEY_SENTENCES = 4  # enough sentences to cover them (titles split at "." are short)


def _starts(pieces: Sequence[str], index: int, text: str) -> bool:
    """Whether the sentences from ``index`` on spell out ``text`` exactly, ending on a sentence end."""
    position = 0
    while position < len(text) and index < len(pieces):
        if not text.startswith(pieces[index], position):
            return False
        position += len(pieces[index])
        index += 1
    return position == len(text)


def corpus_to_iob(corpus_path: str | Path, keep_types: bool = False) -> tuple[list[Sentence], NcbiStats]:
    """IOB2 sentences of one corpus file.

    A repeated PMID keeps its first copy and is listed in ``stats.duplicate_pmids``; a
    repeat whose text or mentions differ is a :class:`DataError`.
    """
    abstracts, repeated = unique_by_pmid(read_corpus(corpus_path), corpus_path)
    stats = NcbiStats(scheme="iob2", abstracts=len(abstracts), duplicate_pmids=repeated)
    sentences = [
        sentence
        for abstract in abstracts
        for sentence in abstract_to_sentences(abstract, corpus_path, keep_types, stats)
    ]
    stats.count(sentences)
    return sentences, stats


def original_splits(
    src_dir: str | Path, keep_types: bool = False, max_words: int | None = None
) -> dict[str, tuple[list[Sentence], NcbiStats]]:
    """Convert the three original corpus files of ``src_dir``, keyed ``train``/``dev``/``test``."""
    src_dir = Path(src_dir)
    missing = [name for name in ORIGINAL_FILENAMES.values() if not (src_dir / name).is_file()]
    if missing:
        raise DataError(src_dir, None, f"missing original corpus file(s): {', '.join(missing)}")
    splits = {}
    for split, name in ORIGINAL_FILENAMES.items():
        sentences, stats = corpus_to_iob(src_dir / name, keep_types)
        if max_words is not None:
            sentences = split_long_sentences(sentences, max_words, stats)
        splits[split] = (sentences, stats)
    return splits


def conll_splits(conll_files: dict[str, Path], original_files: dict[str, Path]
                 ) -> dict[str, tuple[list[Sentence], ConversionStats]]:
    """The CoNLL release's splits (``read_iob``), each sentence named by its abstract's PMID,
    found in the original release's file of the same split (:func:`with_documents`)."""
    splits = {}
    for split, path in conll_files.items():
        sentences, stats = read_iob(path)
        splits[split] = (with_documents(sentences, read_corpus(original_files[split]), path), stats)
    return splits


def write_original_as_conll(
    src_dir: str | Path, out_dir: str | Path, keep_types: bool = False, max_words: int | None = None
) -> dict[str, NcbiStats]:
    """Write ``train.tsv``, ``dev.tsv``, ``test.tsv`` (``word<TAB>tag``) into ``out_dir``."""
    splits = original_splits(src_dir, keep_types, max_words)
    inputs = [Path(src_dir) / name for name in ORIGINAL_FILENAMES.values()]
    for split, (sentences, _) in splits.items():
        write_conll(sentences, Path(out_dir) / f"{split}.tsv", inputs=inputs)
    return {split: stats for split, (_, stats) in splits.items()}
