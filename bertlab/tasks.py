"""What differs between text classification and NER: data checks, model class, test report.

The evaluation functions are shared by training (test split, after fit) and the
``scripts/evaluate_*.py`` entry points (any file, a restored ``.nemo``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from bertlab.config import ConfigError, require_files
from bertlab.data.iob import Sentence, read_nemo, write_conll
from bertlab.data.tsv import read_labeled_tsv
from bertlab.io import DataError, atomic_write
from bertlab.metrics import classification_scores, entity_scores, format_report

log = logging.getLogger(__name__)


def write_metrics(out_dir: Path, report: dict) -> Path:
    path = Path(out_dir) / "metrics.json"
    with atomic_write(path) as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    return path


# --- text classification ----------------------------------------------------------------


def check_text_classification(cfg: DictConfig) -> None:
    num_classes = cfg.model.dataset.num_classes
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"model.dataset.num_classes must be an integer >= 2, got {num_classes!r}")
    names = cfg.model.get("class_names")
    if names and len(names) != num_classes:
        raise ConfigError(f"model.class_names has {len(names)} names for num_classes={num_classes}")
    files = {f"model.{split}.file_path": cfg.model[split].file_path
             for split in ("train_ds", "validation_ds", "test_ds")}
    require_files(files)
    for path in filter(None, files.values()):
        table = read_labeled_tsv(path, num_classes=num_classes)  # DataError: file:line
        if table.header_removed:
            raise DataError(path, 1, f"header row found; NeMo reads it as data. Strip it first: "
                                     f"python scripts/strip_tsv_header.py {path}")


def evaluate_text_classification(model, tsv_path: str | Path, out_dir: Path | None, batch_size: int = 64,
                                 max_seq_length: int = -1) -> dict[str, float]:
    """Classify every row of a labeled TSV; report per-class and macro scores.

    Writes ``metrics.json`` and ``predictions.tsv`` (text, gold, pred) into ``out_dir``.
    Returns the flat scalars (accuracy, macro_f1, micro_f1, f1_<class>).
    """
    rows = read_labeled_tsv(tsv_path, num_classes=model.cfg.dataset.num_classes).rows
    texts, gold = [t for t, _ in rows], [label for _, label in rows]
    pred = model.predict_texts(texts, batch_size=batch_size, max_seq_length=max_seq_length)
    names = model.class_names
    scores = classification_scores(gold, pred, names)
    print(format_report(f"Test set: {tsv_path} ({len(rows)} texts)", scores["per_class"],
                        {k: scores[k] for k in ("accuracy", "macro_f1", "micro_f1")}))
    if out_dir is not None:
        write_metrics(out_dir, {"task": "text_classification", "file": str(tsv_path), **scores})
        with atomic_write(Path(out_dir) / "predictions.tsv") as handle:
            handle.write("sentence\tgold\tpred\n")
            handle.writelines(f"{t}\t{names[g]}\t{names[p]}\n" for t, g, p in zip(texts, gold, pred))
    flat = {k: scores[k] for k in ("accuracy", "macro_f1", "micro_f1")}
    flat.update({f"f1_{name.replace(' ', '_')}": s["f1"] for name, s in scores["per_class"].items()})
    return flat


def show_text_classification(model, samples: list[str]) -> None:
    names = model.class_names
    for text, label in zip(samples, model.predict_texts(samples)):
        print(f"[{label} {names[label]}] {text}")


# --- token classification (NER) ---------------------------------------------------------


def check_token_classification(cfg: DictConfig) -> None:
    data_dir = Path(cfg.model.dataset.data_dir)
    require_files({f"model.{split}.{kind}": str(data_dir / cfg.model[split][kind])
                   for split in ("train_ds", "validation_ds", "test_ds")
                   for kind in ("text_file", "labels_file")})


def evaluate_ner(model, gold: list[Sentence], out_dir: Path | None, source: str = "",
                 batch_size: int = 64) -> dict[str, float]:
    """Tag every sentence; report exact-match entity scores overall and per type.

    Writes ``metrics.json`` and ``predictions.conll`` (token, gold, pred) into ``out_dir``.
    """
    tags = model.predict_tags([list(s.words) for s in gold], batch_size=batch_size)
    predicted = [Sentence(s.words, tuple(t)) for s, t in zip(gold, tags)]
    scores = entity_scores([s.tags for s in gold], [s.tags for s in predicted])
    print(format_report(f"Entity-level (exact match, IOB2 strict): {source} ({len(gold)} sentences)",
                        scores["per_type"], {k: scores[k] for k in ("precision", "recall", "f1")}))
    if out_dir is not None:
        write_metrics(out_dir, {"task": "token_classification", "file": source, "entity": scores})
        write_conll(gold, Path(out_dir) / "predictions.conll", predictions=predicted)
    flat = {f"entity_{k}": scores[k] for k in ("precision", "recall", "f1")}
    flat.update({f"entity_f1_{name}": s["f1"] for name, s in scores["per_type"].items()})
    return flat


def show_token_classification(model, samples: list[str]) -> None:
    for line in model.add_predictions(samples):
        print(line)


class TextClassificationTask:
    check = staticmethod(check_text_classification)

    @property
    def model_class(self):
        from bertlab.models import TextClassifier

        return TextClassifier

    def evaluate(self, model, cfg: DictConfig, out_dir: Path | None) -> dict[str, float]:
        test = cfg.model.test_ds
        if not test.file_path:
            return {}
        return evaluate_text_classification(model, test.file_path, out_dir, batch_size=test.batch_size,
                                            max_seq_length=cfg.model.dataset.max_seq_length)

    def show_inference(self, model, cfg: DictConfig) -> None:
        show_text_classification(model, list(cfg.model.get("infer_samples") or []))


class TokenClassificationTask:
    check = staticmethod(check_token_classification)

    @property
    def model_class(self):
        from bertlab.models import TokenClassifier

        return TokenClassifier

    def evaluate(self, model, cfg: DictConfig, out_dir: Path | None) -> dict[str, float]:
        data_dir, test = Path(cfg.model.dataset.data_dir), cfg.model.test_ds
        text, labels = data_dir / test.text_file, data_dir / test.labels_file
        return evaluate_ner(model, read_nemo(text, labels), out_dir, source=str(text), batch_size=test.batch_size)

    def show_inference(self, model, cfg: DictConfig) -> None:
        show_token_classification(model, list(cfg.model.get("infer_samples") or []))


TASKS = {"text_classification": TextClassificationTask(), "token_classification": TokenClassificationTask()}
