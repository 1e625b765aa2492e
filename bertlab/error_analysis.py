"""What a model gets wrong on a test set: NER errors by kind, a confusion matrix for classes.

NER errors are read off the same entities as the scores (seqeval, IOB2 strict), so they
add up to them: every missed gold entity and every spurious predicted one is in exactly
one row. A predicted entity that overlaps missed gold ones is one *boundary* error (same
type) or *type* error (another type) instead of a false positive plus false negatives.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bertlab.io import atomic_write

ERROR_KINDS = ("false_negative", "false_positive", "boundary", "type")
ERRORS_FILE = "errors.tsv"
CONFUSION_FILE = "confusion_matrix.png"


@dataclass(frozen=True)
class EntityError:
    kind: str                        # one of ERROR_KINDS
    sentence: int                    # index of the sentence in the evaluated file
    gold: tuple[tuple[str, int, int], ...]  # (type, first word, end word) of the gold entities involved
    pred: tuple[tuple[str, int, int], ...]  # ... of the predicted ones


def _entities(tags: Sequence[Sequence[str]]) -> list[set[tuple[str, int, int]]]:
    """Per sentence, the entities seqeval scores in strict IOB2 mode: (type, start, end)."""
    from seqeval.scheme import IOB2, Entities

    per_sentence: list[set] = [set() for _ in tags]
    for sentence in Entities([list(t) for t in tags], IOB2).entities:
        for entity in sentence:
            per_sentence[entity.sent_id].add((entity.tag, entity.start, entity.end))
    return per_sentence


def _overlap(a: tuple[str, int, int], b: tuple[str, int, int]) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def entity_errors(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> list[EntityError]:
    """Every entity-level error of ``pred`` against ``gold`` (tag sequences per sentence)."""
    errors = []
    for index, (gold_set, pred_set) in enumerate(zip(_entities(gold), _entities(pred))):
        missed = sorted(gold_set - pred_set, key=lambda e: e[1])
        spurious = sorted(pred_set - gold_set, key=lambda e: e[1])
        paired: set = set()
        for entity in spurious:
            overlapping = tuple(g for g in missed if _overlap(g, entity) and g not in paired)
            if not overlapping:
                errors.append(EntityError("false_positive", index, (), (entity,)))
                continue
            paired.update(overlapping)
            kind = "boundary" if all(g[0] == entity[0] for g in overlapping) else "type"
            errors.append(EntityError(kind, index, overlapping, (entity,)))
        errors.extend(EntityError("false_negative", index, (g,), ()) for g in missed if g not in paired)
    return sorted(errors, key=lambda e: (e.sentence, min(x[1] for x in e.gold + e.pred)))


def error_counts(errors: Sequence[EntityError]) -> dict[str, int]:
    counts = Counter(error.kind for error in errors)
    return {kind: counts.get(kind, 0) for kind in ERROR_KINDS}


def write_entity_errors(path: str | Path, words: Sequence[Sequence[str]], errors: Sequence[EntityError]) -> Path:
    """``errors.tsv``: kind, sentence number (1-based), entity types, the gold and the
    predicted entity text (`` | `` between several), and the sentence."""

    def text(entities, sentence):
        return " | ".join(" ".join(words[sentence][start:end]) for _, start, end in entities)

    with atomic_write(path) as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(["kind", "sentence", "type", "gold", "predicted", "text"])
        for error in errors:
            types = sorted({entity[0] for entity in error.gold + error.pred})
            writer.writerow([error.kind, error.sentence + 1, "/".join(types), text(error.gold, error.sentence),
                             text(error.pred, error.sentence), " ".join(words[error.sentence])])
    return Path(path)


def confusion(gold: Sequence[int], pred: Sequence[int], num_classes: int) -> list[list[int]]:
    """Counts, rows gold class, columns predicted class."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(gold, pred, labels=list(range(num_classes))).tolist()


def plot_confusion(path: str | Path, matrix: Sequence[Sequence[int]], class_names: Sequence[str],
                   title: str = "") -> Path:
    """A confusion matrix PNG (counts; rows gold, columns predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    figure, axes = plt.subplots(figsize=(1.6 * len(class_names) + 2.5, 1.4 * len(class_names) + 2))
    display = ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(class_names))
    display.plot(ax=axes, cmap="Blues", colorbar=False, values_format="d", xticks_rotation=20)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    if title:
        axes.set_title(title)
    figure.tight_layout()
    with atomic_write(path, mode="wb") as handle:
        figure.savefig(handle, format="png", dpi=120)
    plt.close(figure)
    return Path(path)
