"""Abbreviations defined in a document, tagged wherever they recur.

A biomedical abstract defines an abbreviation once, ``Cowden disease ( CD ; MIM 158350 )``,
then uses the short form alone (``37 CD families``). A tagger that reads one sentence at a
time cannot tell that this ``CD`` names a disease; in the NCBI test split the missed short
forms are about half of all missed mentions (README, What the models still get wrong).

So, after tagging, each definition "entity ``(`` short form" in a document, where the long
form is an entity the model found and the short form's letters and digits occur in it in
order with the first at a word start (Schwartz and Hearst, 2003, "A simple algorithm for
identifying abbreviation definitions in biomedical text"), makes every untagged occurrence
of the short form in that document an entity of the long form's type. Nothing the model
tagged is changed; a short form the model found nowhere as a definition is left alone.

A long form whose head word names an enzyme (``deficiency of aspartoacylase ( ASPA )``,
``deficient arylsulfatase A ( ARSA )``) defines a gene's name, not the disease's: the short
form recurs as ``ASPA gene``, ``ARSA activity``, so it is not propagated (chosen on dev,
README, Abbreviations and document context).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bertlab.data.iob import document_runs

MAX_SHORT_WORDS = 5  # "T - PLL" is three words
MAX_SHORT_CHARS = 10
_SHORT_FORM_ENDS = (")", ";", ",")  # "( CD ; MIM 158350 )", "( SCA1 , n = 11 )"


def is_short_form(words: Sequence[str]) -> bool:
    text = "".join(words)
    return (0 < len(words) <= MAX_SHORT_WORDS and len(text) <= MAX_SHORT_CHARS
            and any(char.isupper() for char in text) and not any(word in "()[]" for word in words))


def abbreviates(short: Sequence[str], long: Sequence[str]) -> bool:
    """Schwartz and Hearst's match: the short form's letters and digits, right to left, each
    found further left in the long form, the first one at the start of a word."""
    letters = [char.lower() for char in "".join(short) if char.isalnum()]
    text = " ".join(long).lower()
    position = len(text) - 1
    for index in range(len(letters) - 1, -1, -1):
        while position >= 0 and (text[position] != letters[index]
                                 or (index == 0 and position > 0 and text[position - 1].isalnum())):
            position -= 1
        if position < 0:
            return False
        position -= 1
    return bool(letters)


def names_an_enzyme(long: Sequence[str]) -> bool:
    """Whether the long form's head, its last word past a trailing letter or numeral
    (``arylsulfatase A``, ``coproporphyrinogen III oxidase``), is an enzyme's name: ``-ase``,
    not ``disease``."""
    words = list(long)
    while len(words) > 1 and (len(words[-1]) <= 2 or re.fullmatch(r"[0-9IVXivx]+", words[-1])):
        words.pop()
    head = words[-1].lower() if words else ""
    return head.endswith("ase") and not head.endswith("disease")


def definitions(words: Sequence[str], tags: Sequence[str]) -> dict[tuple[str, ...], str]:
    """Short forms defined after an entity, ``entity ( SHORT ...``, with the entity's type
    (entities that name an enzyme left out, see the module)."""
    from seqeval.metrics.sequence_labeling import get_entities  # conlleval's reading: a stray I- starts one

    found: dict[tuple[str, ...], str] = {}
    for label, start, last in get_entities(list(tags)):
        end = last + 1
        if end >= len(words) or words[end] != "(":
            continue
        close = end + 1
        while close < len(words) and words[close] not in _SHORT_FORM_ENDS and close - end <= MAX_SHORT_WORDS:
            close += 1
        short = tuple(words[end + 1:close])
        if close < len(words) and words[close] in _SHORT_FORM_ENDS and is_short_form(short) \
                and abbreviates(short, words[start:end]) and not names_an_enzyme(words[start:end]):
            found.setdefault(short, label)
    return found


def propagate_abbreviations(words: Sequence[str], tags: Sequence[str], outside: str = "O") -> list[str]:
    """``tags`` with every untagged occurrence of a defined short form tagged (see the module)."""
    result = list(tags)
    for short, label in definitions(words, tags).items():
        width = len(short)
        for start in range(len(words) - width + 1):
            window = slice(start, start + width)
            if tuple(words[window]) == short and all(tag == outside for tag in result[window]):
                result[window] = [f"B-{label}"] + [f"I-{label}"] * (width - 1)
    return result


def propagate_in_documents(words: Sequence[Sequence[str]], tags: Sequence[Sequence[str]],
                           documents: Sequence[str | None] | None, outside: str = "O") -> list[list[str]]:
    """Each sentence's tags after :func:`propagate_abbreviations` over its document: a run of
    consecutive sentences with the same name in ``documents`` (None: each sentence alone)."""
    result: list[list[str]] = [[] for _ in words]
    for run in document_runs(documents, len(words)):
        propagated = propagate_abbreviations([w for i in run for w in words[i]], [t for i in run for t in tags[i]],
                                             outside)
        for index in run:
            result[index], propagated = propagated[:len(words[index])], propagated[len(words[index]):]
    return result
