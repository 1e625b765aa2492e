"""Task metrics from plain label sequences: sklearn for classes, seqeval for entities."""

from __future__ import annotations

from collections.abc import Sequence


def classification_scores(gold: Sequence[int], pred: Sequence[int], class_names: Sequence[str]) -> dict:
    """Accuracy, macro and micro F1, and precision/recall/F1/support per named class."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(gold, pred)) if len(gold) else 0.0,
        "macro_f1": float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(gold, pred, labels=labels, average="micro", zero_division=0)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
        },
    }


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Exact-match entity precision/recall/F1 (CoNLL style, IOB2, seqeval strict mode),
    overall (micro) and per entity type."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    gold, pred = [list(s) for s in gold], [list(s) for s in pred]
    if [len(s) for s in gold] != [len(s) for s in pred]:
        raise ValueError("gold and predicted tag sequences differ in length")
    report = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    overall = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    per_type = {
        name: {"precision": float(s["precision"]), "recall": float(s["recall"]),
               "f1": float(s["f1-score"]), "support": int(s["support"])}
        for name, s in report.items()
        if not name.endswith(" avg")
    }
    return {
        "precision": float(overall["precision"]),
        "recall": float(overall["recall"]),
        "f1": float(overall["f1-score"]),
        "support": int(overall["support"]),
        "per_type": per_type,
    }


def format_report(title: str, rows: dict[str, dict], overall: dict[str, float]) -> str:
    """A fixed-width table: one row per class or entity type, then the overall line."""
    lines = [title, f"{'':<24}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, s in rows.items():
        lines.append(f"{name:<24}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['f1']:>10.4f}{s['support']:>10d}")
    lines.append("  ".join(f"{k}={v:.4f}" for k, v in overall.items()))
    return "\n".join(lines)
