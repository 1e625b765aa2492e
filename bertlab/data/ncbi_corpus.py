"""Reader for the NCBI Disease corpus in its original release format.

Per abstract: ``PMID|t|title``, ``PMID|a|abstract``, one tab-separated line per mention
``PMID  start  end  mention  type  concept-ids`` (offsets into ``title + " " + abstract``),
then a blank line. The course's inline form (``<category="SpecificDisease">text</category>``
inside title and abstract) is read too, see :func:`parse_inline_annotations`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bertlab.io import DataError, read_text_lines

MENTION_TYPES = ("SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention")
_HEADER = re.compile(r"^(\d+)\|([ta])\|(.*)$")
_INLINE = re.compile(r'<category="([^"]+)">(.*?)</category>')


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    text: str
    type: str
    concept_ids: tuple[str, ...] = ()


@dataclass
class Abstract:
    pmid: str
    title: str
    abstract: str
    mentions: list[Mention] = field(default_factory=list)
    line: int = 0  # line of the title in the source file, for error messages

    @property
    def text(self) -> str:
        """The text the mention offsets index into."""
        return f"{self.title} {self.abstract}"


def parse_inline_annotations(marked: str) -> tuple[str, list[Mention]]:
    """Strip ``<category="T">span</category>`` tags; return plain text and mentions in it."""
    plain, mentions, cursor = [], [], 0
    length = 0
    for match in _INLINE.finditer(marked):
        before = marked[cursor : match.start()]
        plain.append(before)
        length += len(before)
        span = match.group(2)
        mentions.append(Mention(length, length + len(span), span, match.group(1)))
        plain.append(span)
        length += len(span)
        cursor = match.end()
    plain.append(marked[cursor:])
    return "".join(plain), mentions


def read_corpus(path: str | Path) -> list[Abstract]:
    """Parse one corpus file (offset or inline form). Errors name the file and line."""
    path = Path(path)
    abstracts: list[Abstract] = []
    current: Abstract | None = None

    for number, raw in enumerate(read_text_lines(path), start=1):
        line = raw
        if not line.strip():
            current = None
            continue
        header = _HEADER.match(line)
        if header:
            pmid, kind, body = header.groups()
            if kind == "t":
                current = Abstract(pmid=pmid, title=body, abstract="", line=number)
                abstracts.append(current)
            elif current is None or current.pmid != pmid:
                raise DataError(path, number, f"abstract line for PMID {pmid} without its title line")
            else:
                current.abstract = body
                _adopt_inline_mentions(path, number, current)
            continue
        if current is None:
            raise DataError(path, number, "mention line outside an abstract (expected 'PMID|t|title' first)")
        current.mentions.append(_parse_mention(path, number, line, current))
    if not abstracts:
        raise DataError(path, None, "no abstracts (expected 'PMID|t|title' and 'PMID|a|abstract' lines)")
    return abstracts


def _adopt_inline_mentions(path: Path, number: int, abstract: Abstract) -> None:
    if "<category=" not in abstract.title and "<category=" not in abstract.abstract:
        return
    title, title_mentions = parse_inline_annotations(abstract.title)
    body, body_mentions = parse_inline_annotations(abstract.abstract)
    for line, plain in ((abstract.line, title), (number, body)):
        # An unclosed or nested tag would otherwise stay in the text as words.
        if "<category" in plain or "</category>" in plain:
            raise DataError(path, line, "unbalanced <category=\"...\">...</category> tag")
    shift = len(title) + 1
    abstract.title, abstract.abstract = title, body
    abstract.mentions.extend(title_mentions)
    abstract.mentions.extend(Mention(m.start + shift, m.end + shift, m.text, m.type) for m in body_mentions)


def _parse_mention(path: Path, number: int, line: str, abstract: Abstract) -> Mention:
    columns = line.split("\t")
    if len(columns) < 5:
        raise DataError(path, number, f"mention line has {len(columns)} tab-separated columns, expected 6")
    pmid, start, end, text, kind = columns[:5]
    ids = columns[5] if len(columns) > 5 else ""
    if pmid != abstract.pmid:
        raise DataError(path, number, f"mention of PMID {pmid} inside abstract {abstract.pmid}")
    if not (start.isdigit() and end.isdigit()) or int(start) >= int(end):
        raise DataError(path, number, f"bad mention offsets {start!r}..{end!r}")
    start_i, end_i = int(start), int(end)
    if end_i > len(abstract.text):
        raise DataError(path, number, f"mention offsets {start_i}..{end_i} past the end of the text "
                                      f"({len(abstract.text)} characters)")
    span = abstract.text[start_i:end_i]
    # The release has a few mentions with trailing blanks beyond their offsets; offsets win.
    if span.split() != text.split():
        raise DataError(
            path, number, f"mention {text!r} does not match the text at {start_i}..{end_i}: "
            f"{abstract.text[start_i:end_i]!r}"
        )
    concept_ids = tuple(i for i in re.split(r"[|+,]", ids) if i)
    return Mention(start_i, end_i, span, kind, concept_ids)


def unique_by_pmid(abstracts: Iterable[Abstract], path: str | Path) -> tuple[list[Abstract], list[str]]:
    """First occurrence of each PMID, and the PMIDs that were repeated.

    Raises DataError when a repeat differs from the first copy in text or mentions.
    """
    first_by_pmid: dict[str, Abstract] = {}
    repeated: list[str] = []
    for abstract in abstracts:
        first = first_by_pmid.setdefault(abstract.pmid, abstract)
        if first is abstract:
            continue
        repeated.append(abstract.pmid)
        if _content(abstract) != _content(first):
            raise DataError(
                path, abstract.line, f"PMID {abstract.pmid} repeats line {first.line} with different content"
            )
    return list(first_by_pmid.values()), repeated


def _content(abstract: Abstract) -> tuple:
    mentions = sorted((m.start, m.end, m.text, m.type, m.concept_ids) for m in abstract.mentions)
    return abstract.text, mentions
