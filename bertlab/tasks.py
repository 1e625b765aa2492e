"""What differs between text classification and NER: one :class:`TaskSpec` per task.

A spec holds the model class, the monitored validation metric, the main test metric, the
data checks, the test report and the prediction method. The evaluation functions are
shared by training (test split, after fit) and the ``scripts/evaluate_*.py`` entry points
(any file, a restored ``.nemo``); all predict through :class:`bertlab.predict.Predictor`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from bertlab.config import ConfigError, require_files
from bertlab.data.iob import Sentence, read_nemo, write_conll
from bertlab.data.tsv import read_labeled_tsv
from bertlab.error_analysis import (
    CONFUSION_FILE,
    ERRORS_FILE,
    confusion,
    entity_errors,
    error_counts,
    plot_confusion,
    write_entity_errors,
)
from bertlab.io import DataError, atomic_write, ensure_not_inputs
from bertlab.long_text import check_strategy
from bertlab.metrics import classification_scores, entity_scores, format_report

log = logging.getLogger(__name__)

SPLITS = ("train_ds", "validation_ds", "test_ds")


def check_evaluation(nemo_path: str | Path, task: str, inputs: list[Path], out_dir: Path | None,
                     outputs: tuple[str, ...]) -> DictConfig:
    """What ``scripts/evaluate_*.py`` check before the 20 s model load: the model is a bertlab
    model of ``task``, and no output in ``out_dir`` would overwrite an input. Returns the
    model's saved config."""
    from bertlab.restore import model_spec

    cfg, spec = model_spec(nemo_path)
    if spec.name != task:
        raise DataError(nemo_path, None, f"is a {spec.name} model; this script evaluates {task} models")
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise DataError(out_dir, None, "--out-dir is a file, not a directory")
        ensure_not_inputs([out_dir / name for name in outputs], inputs)
    return cfg


def write_metrics(out_dir: Path, report: dict) -> Path:
    path = Path(out_dir) / "metrics.json"
    with atomic_write(path) as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    return path


# --- text classification ----------------------------------------------------------------


def text_classification_files(cfg: DictConfig) -> dict[str, str | None]:
    """The data files a run reads, by config key (None: not configured, e.g. no test file)."""
    return {f"model.{split}.file_path": cfg.model[split].file_path for split in SPLITS}


def check_text_classification(cfg: DictConfig) -> None:
    num_classes = cfg.model.dataset.num_classes
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"model.dataset.num_classes must be an integer >= 2, got {num_classes!r}")
    check_strategy(cfg.model.dataset.get("long_text", "head"))
    names = cfg.model.get("class_names")
    if names and len(names) != num_classes:
        raise ConfigError(f"model.class_names has {len(names)} names for num_classes={num_classes}")
    files = text_classification_files(cfg)
    require_files(files)
    for path in filter(None, files.values()):
        table = read_labeled_tsv(path, num_classes=num_classes)  # DataError: file:line
        if table.header_removed:
            raise DataError(path, 1, f"header row found; NeMo reads it as data. Strip it first: "
                                     f"python scripts/strip_tsv_header.py {path}")


def evaluate_text_classification(model, tsv_path: str | Path, out_dir: Path | None, batch_size: int = 64,
                                 max_seq_length: int | None = None) -> dict[str, float]:
    """Classify every row of a labeled TSV; report per-class and macro scores.

    ``model`` is a model or a :class:`bertlab.predict.Predictor`. Writes ``metrics.json``
    (with the confusion matrix), ``predictions.tsv`` (text, gold, pred) and
    ``confusion_matrix.png`` into ``out_dir``. Returns the flat scalars
    (accuracy, macro_f1, micro_f1, f1_<class>).
    """
    predictor = as_predictor(model, batch_size=batch_size, max_seq_length=max_seq_length)
    rows = read_labeled_tsv(tsv_path, num_classes=len(predictor.class_names)).rows
    texts, gold = [t for t, _ in rows], [label for _, label in rows]
    results = predictor.classify(texts)
    pred = [result.label for result in results]
    names = predictor.class_names
    scores = classification_scores(gold, pred, names)
    long_texts = {"max_seq_length": predictor.max_seq_length, "long_text": predictor.long_text,
                  "longer": sum(r.subtokens > predictor.max_seq_length - 2 for r in results),
                  "truncated": sum(r.truncated for r in results)}
    print(format_report(f"Test set: {tsv_path} ({len(rows)} texts; {long_texts['longer']} longer than "
                        f"max_seq_length={predictor.max_seq_length}, read as long_text={predictor.long_text})",
                        scores["per_class"], {k: scores[k] for k in ("accuracy", "macro_f1", "micro_f1")}))
    matrix = confusion(gold, pred, len(names))
    if out_dir is not None:
        write_metrics(out_dir, {"task": "text_classification", "file": str(tsv_path), **scores,
                                "long_texts": long_texts,
                                "confusion_matrix": {"class_names": names, "gold_by_pred": matrix}})
        plot_confusion(Path(out_dir) / CONFUSION_FILE, matrix, names,
                       title=f"{Path(tsv_path).name}: macro F1 {scores['macro_f1']:.3f}")
        with atomic_write(Path(out_dir) / "predictions.tsv") as handle:
            handle.write("sentence\tgold\tpred\n")
            handle.writelines(f"{t}\t{names[g]}\t{names[p]}\n" for t, g, p in zip(texts, gold, pred))
    flat = {k: scores[k] for k in ("accuracy", "macro_f1", "micro_f1")}
    flat.update({f"f1_{name.replace(' ', '_')}": s["f1"] for name, s in scores["per_class"].items()})
    return flat


def show_text_classification(model, samples: list[str]) -> None:
    for text, result in zip(samples, as_predictor(model).classify(samples)):
        print(f"[{result.label} {result.class_name}] {text}")


# --- token classification (NER) ---------------------------------------------------------


def token_classification_files(cfg: DictConfig) -> dict[str, str]:
    """The data files a run reads, by config key (the documents files when the run uses them)."""
    data_dir = Path(cfg.model.dataset.data_dir)
    return {f"model.{split}.{kind}": str(data_dir / cfg.model[split][kind])
            for split in SPLITS for kind in _token_data_kinds(cfg, split)}


def _token_data_kinds(cfg: DictConfig, split: str) -> tuple[str, ...]:
    """Document context needs the documents file; the abbreviation step uses it when it exists
    (without it, each sentence is a document of its own: see check_token_classification)."""
    documents = cfg.model[split].get("documents_file")
    if cfg.model.dataset.get("context") == "document" and documents or _optional_documents(cfg, split):
        return "text_file", "labels_file", "documents_file"
    return "text_file", "labels_file"


def _optional_documents(cfg: DictConfig, split: str) -> bool:
    documents = cfg.model[split].get("documents_file")
    return bool(cfg.model.get("propagate_abbreviations") and documents
                and (Path(cfg.model.dataset.data_dir) / documents).is_file())


def check_token_classification(cfg: DictConfig) -> None:
    from bertlab.data.iob import check_nemo_token_data

    require_files(token_classification_files(cfg))
    missing = [cfg.model[split].documents_file for split in SPLITS if cfg.model.get("propagate_abbreviations")
               and cfg.model[split].get("documents_file") and not _optional_documents(cfg, split)]
    if missing:
        log.warning("%s: no such file in %s; the abbreviation step takes each sentence as a document of its own "
                    "(`make data` writes them)", ", ".join(missing), cfg.model.dataset.data_dir)
    # Line counts, tokens vs tags, IOB2, and no dev/test tag that train lacks, with file:line.
    check_nemo_token_data(Path(cfg.model.dataset.data_dir),
                          {split: tuple(cfg.model[split][kind] for kind in _token_data_kinds(cfg, split))
                           for split in SPLITS},
                          train="train_ds")


def evaluate_ner(model, gold: list[Sentence], out_dir: Path | None, source: str = "",
                 batch_size: int = 64) -> dict[str, float]:
    """Tag every sentence; report exact-match entity scores overall and per type.

    ``model`` is a model or a :class:`bertlab.predict.Predictor`; a model trained with document
    context reads each sentence beside the others of its document (``Sentence.document``).
    Writes ``metrics.json``
    (with the error counts), ``predictions.conll`` (token, gold, pred) and ``errors.tsv``
    (:mod:`bertlab.error_analysis`) into ``out_dir``.
    """
    documents = [s.document for s in gold] if any(s.document for s in gold) else None
    tagged = as_predictor(model, batch_size=batch_size).tag([list(s.words) for s in gold], documents)
    predicted = [Sentence(s.words, t.tags) for s, t in zip(gold, tagged)]
    scores = entity_scores([s.tags for s in gold], [s.tags for s in predicted])
    errors = entity_errors([s.tags for s in gold], [s.tags for s in predicted])
    counts = error_counts(errors)
    print(format_report(f"Entity-level (exact match, IOB2 strict): {source} ({len(gold)} sentences)",
                        scores["per_type"], {k: scores[k] for k in ("precision", "recall", "f1")}))
    print("errors: " + ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in counts.items()))
    if out_dir is not None:
        write_metrics(out_dir, {"task": "token_classification", "file": source, "entity": scores, "errors": counts})
        write_conll(gold, Path(out_dir) / "predictions.conll", predictions=predicted)
        write_entity_errors(Path(out_dir) / ERRORS_FILE, [s.words for s in gold], errors)
    flat = {f"entity_{k}": scores[k] for k in ("precision", "recall", "f1")}
    flat.update({f"entity_f1_{name}": s["f1"] for name, s in scores["per_type"].items()})
    return flat


def show_token_classification(model, samples: list[str]) -> None:
    from bertlab.predict_io import inline_tags

    for result in as_predictor(model).tag(samples):
        print(inline_tags(result))


def as_predictor(model, **kwargs):
    """``model`` itself if it is a Predictor, else a Predictor on the model's own device."""
    from bertlab.predict import Predictor

    return model if isinstance(model, Predictor) else Predictor(model, **kwargs)


def _evaluate_text_classification(model, cfg: DictConfig, out_dir: Path | None) -> dict[str, float]:
    test = cfg.model.test_ds
    if not test.file_path:
        return {}
    return evaluate_text_classification(model, test.file_path, out_dir, batch_size=test.batch_size,
                                        max_seq_length=cfg.model.dataset.max_seq_length)


def read_token_split(cfg: DictConfig, split: str) -> list[Sentence]:
    """The sentences of a split (``validation_ds``, ``test_ds``), with their documents when
    the run uses them."""
    files = token_classification_files(cfg)
    return read_nemo(files[f"model.{split}.text_file"], files[f"model.{split}.labels_file"],
                     files.get(f"model.{split}.documents_file"))


def _evaluate_ner(model, cfg: DictConfig, out_dir: Path | None) -> dict[str, float]:
    test = cfg.model.test_ds
    return evaluate_ner(model, read_token_split(cfg, "test_ds"), out_dir,
                        source=str(Path(cfg.model.dataset.data_dir) / test.text_file), batch_size=test.batch_size)


# --- the task specs ---------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """Everything that differs between the tasks, in one place: the configs
    (``conf/train_*.yaml``), training, restoring, prediction and run comparison read it
    or are tested against it."""

    name: str                     # the configs' ``task:`` value
    model_class_path: str         # the LightningModule trained, saved and restored
    monitor: str                  # validation metric that picks the best checkpoint
    monitor_mode: str             # "max" or "min"
    main_metric: str              # the headline test metric, a key of evaluate()'s result
    test_metrics: tuple[str, ...]  # test scalars worth a column, as logged (``test_<key>``)
    check: Callable[[DictConfig], None]  # config and data checks before the model is built
    data_files: Callable[[DictConfig], dict]  # config key -> data file the run reads
    evaluate_fn: Callable                # (model, cfg, out_dir) -> flat test metrics
    show_fn: Callable                    # (model, samples) -> prints predictions
    predict: str                  # the bertlab.predict.Predictor method
    output_formats: tuple[str, ...]  # scripts/predict.py --format choices, default first
    error_analysis: str           # what evaluate() writes for a look at the errors (compare_runs links it)

    @property
    def model_class(self):
        from nemo.utils.model_utils import import_class_by_path

        return import_class_by_path(self.model_class_path)

    @property
    def main_test_scalar(self) -> str:
        return f"test_{self.main_metric}"

    def evaluate(self, model, cfg: DictConfig, out_dir: Path | None) -> dict[str, float]:
        return self.evaluate_fn(model, cfg, out_dir)

    def show_inference(self, model, cfg: DictConfig) -> None:
        samples = list(cfg.model.get("infer_samples") or [])
        if samples:
            self.show_fn(model, samples)


TASK_SPECS: dict[str, TaskSpec] = {
    "text_classification": TaskSpec(
        name="text_classification",
        model_class_path="bertlab.models.TextClassifier",
        monitor="val_macro_f1",
        monitor_mode="max",
        main_metric="macro_f1",
        test_metrics=("test_macro_f1", "test_accuracy"),
        check=check_text_classification,
        data_files=text_classification_files,
        evaluate_fn=_evaluate_text_classification,
        show_fn=show_text_classification,
        predict="classify",
        output_formats=("json", "tsv"),
        error_analysis=CONFUSION_FILE,
    ),
    "token_classification": TaskSpec(
        name="token_classification",
        model_class_path="bertlab.models.TokenClassifier",
        monitor="val_entity_f1",
        monitor_mode="max",
        main_metric="entity_f1",
        test_metrics=("test_entity_f1", "test_entity_precision", "test_entity_recall"),
        check=check_token_classification,
        data_files=token_classification_files,
        evaluate_fn=_evaluate_ner,
        show_fn=show_token_classification,
        predict="tag",
        output_formats=("json", "conll", "inline"),
        error_analysis=ERRORS_FILE,
    ),
}
def task_spec(name: str) -> TaskSpec:
    try:
        return TASK_SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; expected one of {', '.join(TASK_SPECS)}") from None


def spec_for_target(target: str | None) -> TaskSpec | None:
    """The spec whose model class a saved config's ``target`` names (None: not a bertlab model)."""
    return next((spec for spec in TASK_SPECS.values() if spec.model_class_path == target), None)


def spec_for_model(model) -> TaskSpec:
    """The spec of a model instance, by its class."""
    for spec in TASK_SPECS.values():
        module, _, name = spec.model_class_path.rpartition(".")
        if any(cls.__name__ == name and cls.__module__ == module for cls in type(model).__mro__):
            return spec
    raise TypeError(f"{type(model).__name__} is not a bertlab model ({', '.join(TASK_SPECS)})")
