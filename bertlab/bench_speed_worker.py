"""One pipeline of the speed benchmark, in its own process (see bertlab/bench_speed.py).

  python -m bertlab.bench_speed_worker SPEC.json RESULT.json
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from bertlab.bench_speed import REPO, later_epoch_seconds
from bertlab.io import atomic_write

LABEL_NAMES = ["cancer", "neurological disorder", "other"]
# Keys bertlab adds to NeMo's model configs; stock NeMo gets its own keys only.
BERTLAB_MODEL_KEYS = ("nemo_path", "class_names", "attention", "compile", "compile_mode")
BERTLAB_DATASET_KEYS = ("dynamic_padding", "length_buckets", "pad_to_multiple_of")


class Clock:
    """Wall-clock marks of a fit: first training step, epoch starts, end (GPU work drained)."""

    def __init__(self, cuda: bool):
        self.cuda, self.first_step, self.epoch_starts, self.end = cuda, None, [], None
        # CPU seconds of this process over the epochs: on a shared CPU, wall time measures the
        # neighbours too, CPU time mostly the work done.
        self.cpu_start = self.cpu_end = 0.0

    def now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        return time.time()

    def step(self) -> None:
        if self.first_step is None:
            self.first_step = time.time()

    def epoch(self) -> None:
        self.epoch_starts.append(self.now())
        if len(self.epoch_starts) == 1:
            self.cpu_start = time.process_time()

    def finish(self) -> None:
        self.end = self.now()
        self.cpu_end = time.process_time()

    def epoch_seconds(self) -> list[float]:
        # An epoch runs from its start to the next one's: its validation included, in every pipeline.
        bounds = [*self.epoch_starts, self.end]
        return [b - a for a, b in zip(bounds, bounds[1:])]


def lightning_clock(clock: Clock):
    from lightning.pytorch.callbacks import Callback

    class ClockCallback(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            clock.epoch()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            clock.step()

        def on_train_end(self, trainer, pl_module):
            clock.finish()

    return ClockCallback()


def _split_files(spec: dict, split: str) -> tuple[Path, Path, Path | None]:
    """A split's text and labels files, and its documents file if the data has one."""
    data = Path(spec["data_dir"])
    documents = data / f"docs_{split}.txt"
    return data / f"text_{split}.txt", data / f"labels_{split}.txt", documents if documents.is_file() else None


def _test_items(spec: dict):
    """NER: gold sentences; TC: (texts, labels)."""
    if spec["task"] == "ner":
        from bertlab.data.iob import read_nemo

        return read_nemo(*_split_files(spec, "test"))
    from bertlab.data.tsv import read_labeled_tsv

    rows = read_labeled_tsv(Path(spec["data_dir"]) / "test_nemo_format.tsv").rows
    return [t for t, _ in rows], [label for _, label in rows]


def gold_test_labels(spec: dict) -> list:
    """The test split's gold labels: NER tag sequences, TC class ids."""
    items = _test_items(spec)
    return [list(s.tags) for s in items] if spec["task"] == "ner" else items[1]


def _score(spec: dict, gold, pred) -> float:
    from bertlab.metrics import classification_scores, entity_scores

    if spec["task"] == "ner":
        return entity_scores(gold, pred)["f1"]
    return classification_scores(gold, pred, LABEL_NAMES)["macro_f1"]


# --- bertlab --------------------------------------------------------------------------


def run_bertlab(spec: dict, clock: Clock) -> tuple[float, float, float, list]:
    """The default config; the speed benchmark pins epochs, batch, lr and length (all in
    ``spec``) and writes no checkpoints, plus a ``--variant``'s overrides; the quality benchmark
    gives the recipe's own ``overrides`` instead."""
    from hydra import compose, initialize_config_dir

    from bertlab.config import register_resolvers
    from bertlab.train import train

    register_resolvers()
    overrides = [
        f"trainer={'gpu' if spec['device'] == 'cuda' else 'cpu'}", f"trainer.precision={spec['precision']}",
        "trainer.enable_progress_bar=false", f"seed={spec['seed']}",
        f"model.language_model.pretrained_model_name={spec['encoder']}", f"data.dir={spec['data_dir']}",
        f"exp_manager.exp_dir={spec['work_dir']}",
    ]
    if "overrides" not in spec:
        # No checkpoint writes while timing, as stock NeMo here (a variant can turn them on to
        # measure them); the quality benchmark keeps them: they pick the best dev epoch. Every
        # parameter is updated in every step and the tags are the model's own, as in the other
        # pipelines (no frozen warm start, no abbreviation step).
        overrides += [f"trainer.max_epochs={spec['epochs']}", f"model.train_ds.batch_size={spec['batch_size']}",
                      f"model.optim.lr={spec['lr']}", f"model.optim.sched.warmup_ratio={spec['warmup_ratio']}",
                      f"model.dataset.max_seq_length={spec['max_seq_length']}",
                      "exp_manager.create_checkpoint_callback=false", "model.freeze_embeddings_epochs=0"]
        if spec["task"] == "ner":
            overrides.append("model.propagate_abbreviations=false")
    name = "train_ner" if spec["task"] == "ner" else "train_tc"
    if spec["task"] == "tc":
        overrides.append("model.dataset.num_classes=3")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name=name, overrides=[*overrides, *spec.get("overrides", []),
                                                   *spec.get("variant_overrides", [])])
    result = train(cfg, callbacks=(lightning_clock(clock),))
    dev = result.best_val
    if spec["task"] == "ner" and "overrides" in spec:
        dev = _decoded_dev_f1(result.nemo_path, cfg)
    return (result.fit_seconds, result.metrics["entity_f1" if spec["task"] == "ner" else "macro_f1"], dev,
            _written_test_predictions(spec["task"], result.log_dir))


def _written_test_predictions(task: str, log_dir: Path) -> list:
    """The test predictions the run wrote beside its metrics: NER tag sequences, TC class ids."""
    from bertlab.io import read_text_lines

    if task == "ner":
        from bertlab.data.iob import read_conll

        return [list(s.tags) for s in read_conll(log_dir / "predictions.conll")]  # its last column: predicted
    names = json.loads((log_dir / "metrics.json").read_text())["confusion_matrix"]["class_names"]
    return [names.index(line.rsplit("\t", 1)[1]) for line in read_text_lines(log_dir / "predictions.tsv")[1:]]


def _decoded_dev_f1(nemo_path: Path, cfg) -> float:
    """The tested model's dev entity F1, decoded as the test is (documents, abbreviations): what
    the quality benchmark chooses recipes on. The validation loop's score skips the decoding."""
    from bertlab.predict import Predictor
    from bertlab.tasks import evaluate_ner, read_token_split

    return evaluate_ner(Predictor.load(nemo_path), read_token_split(cfg, "validation_ds"), None,
                        source="dev")["entity_f1"]


# --- stock NeMo -----------------------------------------------------------------------


def nemo_config(spec: dict):
    """NeMo's model keys as bertlab's conf/model/*.yaml holds them, without bertlab's additions."""
    name = "token_classification" if spec["task"] == "ner" else "text_classification"
    cfg = OmegaConf.load(REPO / "conf" / "model" / f"{name}.yaml")
    for key in BERTLAB_MODEL_KEYS:
        cfg.pop(key, None)
    for key in BERTLAB_DATASET_KEYS:
        cfg.dataset.pop(key, None)
    cfg.optim.pop("fused", None)
    cfg.language_model.pretrained_model_name = spec["encoder"]
    cfg.tokenizer.tokenizer_name = spec["encoder"]
    cfg.dataset.max_seq_length = spec["max_seq_length"]
    cfg.train_ds.batch_size = spec["batch_size"]
    cfg.optim.lr, cfg.optim.sched.warmup_ratio = spec["lr"], spec["warmup_ratio"]
    if spec["task"] == "ner":
        cfg.dataset.data_dir = spec["data_dir"]
        cfg.dataset.pin_memory = False
    else:
        cfg.dataset.num_classes = 3
        for split, file in (("train_ds", "train"), ("validation_ds", "dev"), ("test_ds", "test")):
            cfg[split].file_path = str(Path(spec["data_dir"]) / f"{file}_nemo_format.tsv")
            cfg[split].pin_memory = False
    return cfg


def run_nemo(spec: dict, clock: Clock) -> tuple[float, float, None, list]:
    import lightning.pytorch as pl
    from nemo.collections.nlp.models import TextClassificationModel, TokenClassificationModel

    pl.seed_everything(spec["seed"], workers=True)
    trainer = pl.Trainer(accelerator="gpu" if spec["device"] == "cuda" else "cpu", devices=1,
                         precision=spec["precision"], max_epochs=spec["epochs"], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0,
                         gradient_clip_val=1.0, log_every_n_steps=10, callbacks=[lightning_clock(clock)])
    model_class = TokenClassificationModel if spec["task"] == "ner" else TextClassificationModel
    model = model_class(nemo_config(spec), trainer=trainer)
    started = time.perf_counter()
    trainer.fit(model)
    fit_s = time.perf_counter() - started
    if spec["task"] == "ner":
        gold = _test_items(spec)
        flat = model._infer([" ".join(s.words) for s in gold], batch_size=64)
        names = {int(v): k for k, v in model._cfg.label_ids.items()}
        pred, start = [], 0
        for s in gold:
            pred.append([names[i] for i in flat[start : start + len(s.words)]])
            start += len(s.words)
        return fit_s, _score(spec, [list(s.tags) for s in gold], pred), None, pred
    texts, labels = _test_items(spec)
    predicted = model.classifytext(texts, batch_size=64, max_seq_length=spec["max_seq_length"])
    return fit_s, _score(spec, labels, predicted), None, [int(label) for label in predicted]


# --- Hugging Face -----------------------------------------------------------------------


# What a quality grid's Hugging Face recipe may set (conf/quality/*.yaml, ``hf`` and ``hf_defaults``).
HF_RECIPE_KEYS = frozenset({"epochs", "batch_size", "lr", "warmup_ratio", "max_seq_length", "weight_decay",
                            "propagate_abbreviations",  # NER: bertlab's abbreviation step on the predictions
                            "class_weights",            # "balanced": bertlab's weighted_loss weights, see below
                            "average_last_epochs"})     # N: the final model is the mean of the last N epochs'


def hf_recipe(spec: dict) -> dict:
    """The Hugging Face run's settings: the speed benchmark's shared ones, or the quality
    benchmark's candidate recipe (``spec["hf"]``) over the same defaults."""
    shared = {key: spec[key] for key in ("epochs", "batch_size", "lr", "warmup_ratio", "max_seq_length") if key in spec}
    return {"weight_decay": 0.01, **shared, **spec.get("hf", {})}  # warmup: the spec's, or the grid's


def hf_training_settings(recipe: dict) -> dict:
    """The ``TrainingArguments`` of a recipe's optimization (batch, epochs, AdamW, the linear
    schedule with warmup, clipping), shared with the parity check (:mod:`bertlab.parity`)."""
    return {"per_device_train_batch_size": recipe["batch_size"], "num_train_epochs": recipe["epochs"],
            "learning_rate": recipe["lr"], "weight_decay": recipe["weight_decay"],
            "warmup_ratio": recipe["warmup_ratio"], "lr_scheduler_type": "linear", "max_grad_norm": 1.0}


def weighted_cross_entropy(labels: list[int], num_labels: int):
    """A Trainer ``compute_loss_func``: cross-entropy with each class weighted by
    n / (classes x its count) in ``labels``, bertlab's ``class_balancing: weighted_loss``
    weights (:func:`bertlab.nemo_data.class_weights`), padding labels (-100) left out."""
    from collections import Counter

    import torch

    from bertlab.nemo_data import class_weights

    weights = class_weights(Counter(int(label) for label in labels if label != -100), num_labels)
    weight = torch.tensor(weights, dtype=torch.float32)
    print(f"class-weighted cross-entropy, weights {[round(w, 4) for w in weights]}", flush=True)

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"]
        return torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]).float(), labels.view(-1),
                                                 weight=weight.to(logits.device), ignore_index=-100)
    return loss


def epoch_weight_average(epochs: int, max_epochs: int):
    """A Trainer callback: bertlab's ``model.average_last_epochs`` (:mod:`bertlab.averaging`), the
    running mean of the weights at the end of each of the last ``epochs`` of ``max_epochs``."""
    from transformers import TrainerCallback

    from bertlab.averaging import RunningAverage, in_window

    if not 0 < epochs <= max_epochs:
        raise ValueError(f"average_last_epochs: expected 1 to epochs ({max_epochs}), got {epochs}")

    class EpochWeightAverage(TrainerCallback):
        def __init__(self):
            self.average = RunningAverage()

        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            if in_window(round(state.epoch) - 1, epochs, max_epochs):  # state.epoch: the epochs done
                self.average.update(model)
    return EpochWeightAverage()


def hf_tag_labels(sentences) -> list[str]:
    """The training split's tags, ``O`` first, then sorted: the label ids NeMo gives them (its pad label first)."""
    return sorted({t for s in sentences for t in s.tags}, key=lambda t: (t != "O", t))


def hf_tagged_item(tokenizer, sentence, label_ids: dict[str, int], limit: int) -> dict:
    """A sentence as run_ner.py encodes it: the head within ``limit`` subtokens, each word's
    label on its first subtoken, -100 (no loss) on the rest and on the special tokens."""
    item = tokenizer(list(sentence.words), is_split_into_words=True, truncation=True, max_length=limit)
    previous, tags = None, []
    for word in item.word_ids():
        tags.append(-100 if word is None or word == previous else label_ids[sentence.tags[word]])
        previous = word
    item["labels"] = tags
    return dict(item)


def hf_classified_item(tokenizer, text: str, label: int, limit: int) -> dict:
    """A text as run_glue.py encodes it: the head within ``limit`` subtokens."""
    return {**tokenizer(text, truncation=True, max_length=limit), "labels": label}


def run_hf(spec: dict, clock: Clock) -> tuple[float, float, float | None, list]:
    """A plain Trainer; with ``spec["hf"]`` (quality benchmark) it also keeps its best epoch
    by the dev score, as bertlab keeps its best checkpoint."""
    import numpy as np
    import transformers
    from transformers import AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    class ClockCallback(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            clock.epoch()

        def on_step_begin(self, args, state, control, **kwargs):
            clock.step()

        def on_train_end(self, args, state, control, **kwargs):
            clock.finish()

    recipe = hf_recipe(spec)
    # Seeded before the model is built, as transformers' run_glue.py and run_ner.py do: the new
    # classifier head is drawn from torch's generator, which each process otherwise seeds at random.
    transformers.set_seed(spec["seed"])
    tokenizer = AutoTokenizer.from_pretrained(spec["encoder"])
    limit = recipe["max_seq_length"]
    if spec["task"] == "ner":
        from bertlab.data.iob import read_nemo

        splits = {split: read_nemo(*_split_files(spec, split)) for split in ("train", "dev", "test")}
        labels = hf_tag_labels(splits["train"])
        label_ids = {t: i for i, t in enumerate(labels)}
        data = {split: [hf_tagged_item(tokenizer, s, label_ids, limit) for s in sentences]
                for split, sentences in splits.items()}
        model = transformers.AutoModelForTokenClassification.from_pretrained(
            spec["encoder"], num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids)
        collator = transformers.DataCollatorForTokenClassification(tokenizer)

        def predictions(split, logits, label_ids_):
            pred = []
            for sentence, row, ids in zip(splits[split], np.argmax(logits, axis=-1), label_ids_):
                tags = [labels[p] for p, g in zip(row, ids) if g != -100]
                pred.append(tags + ["O"] * (len(sentence.words) - len(tags)))  # words cut by truncation
            if recipe.get("propagate_abbreviations"):  # bertlab's decoding step, for a like-for-like reference
                from bertlab.abbreviations import propagate_in_documents

                documents = [s.document for s in splits[split]]  # as evaluate_ner: none known, each alone
                pred = propagate_in_documents([s.words for s in splits[split]], pred,
                                              documents if any(documents) else None)
            return pred

        gold = {split: [list(s.tags) for s in sentences] for split, sentences in splits.items()}
    else:
        from bertlab.data.tsv import read_labeled_tsv

        data = {}
        for split in ("train", "dev", "test"):
            rows = read_labeled_tsv(Path(spec["data_dir"]) / f"{split}_nemo_format.tsv").rows
            data[split] = [hf_classified_item(tokenizer, text, label, limit) for text, label in rows]
        model = transformers.AutoModelForSequenceClassification.from_pretrained(spec["encoder"], num_labels=3)
        collator = transformers.DataCollatorWithPadding(tokenizer)

        def predictions(split, logits, label_ids_):
            return np.argmax(logits, axis=-1).tolist()

        gold = {split: [item["labels"] for item in items] for split, items in data.items()}

    def score(split, logits, label_ids_):
        return _score(spec, gold[split], predictions(split, logits, label_ids_))

    cuda, average = spec["device"] == "cuda", recipe.get("average_last_epochs") or 0
    keep_best = "hf" in spec and not average  # the averaged weights replace the best epoch's
    callbacks = [ClockCallback()]
    if average:
        callbacks.append(epoch_weight_average(average, recipe["epochs"]))
    compute_loss_func = None
    if recipe.get("class_weights") == "balanced":
        compute_loss_func = weighted_cross_entropy([label for item in data["train"] for label in
                                                    np.atleast_1d(item["labels"])], model.config.num_labels)
    elif recipe.get("class_weights") is not None:
        raise ValueError(f"class_weights: 'balanced' or null, got {recipe['class_weights']!r}")
    args = TrainingArguments(
        output_dir=spec["work_dir"], **hf_training_settings(recipe), per_device_eval_batch_size=64,
        bf16=spec["precision"] == "bf16-mixed", fp16=spec["precision"] == "16-mixed", use_cpu=not cuda,
        eval_strategy="no" if average else "epoch", save_strategy="epoch" if keep_best else "no",
        save_total_limit=1 if keep_best else None, load_best_model_at_end=keep_best,
        metric_for_best_model="f1" if keep_best else None,
        logging_steps=10, report_to=[], disable_tqdm=True, seed=spec["seed"], dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["dev"],
                      data_collator=collator, callbacks=callbacks, compute_loss_func=compute_loss_func,
                      compute_metrics=(lambda output: {"f1": score("dev", *output)}) if keep_best else None)
    started = time.perf_counter()
    trainer.train()
    fit_s = time.perf_counter() - started
    dev = trainer.state.best_metric if keep_best else None
    if average:
        callbacks[-1].average.copy_to(trainer.model)
        trainer.compute_metrics = lambda output: {"f1": score("dev", *output)}
        dev = trainer.evaluate()["eval_f1"]
    trainer.compute_metrics = None  # it scores against dev's gold; test is scored here, against test's
    output = trainer.predict(data["test"])
    test = predictions("test", output.predictions, output.label_ids)
    return fit_s, _score(spec, gold["test"], test), dev, test


PIPELINES = {"bertlab": run_bertlab, "nemo": run_nemo, "hf": run_hf}


def main(spec_path: str, result_path: str) -> None:
    import psutil
    import torch

    process_start = psutil.Process().create_time()
    spec = json.loads(Path(spec_path).read_text())
    Path(spec["work_dir"]).mkdir(parents=True, exist_ok=True)
    cuda = spec["device"] == "cuda"
    clock = Clock(cuda)
    fit_s, f1, dev_f1, test_predictions = PIPELINES[spec["pipeline"]](spec, clock)
    epochs = clock.epoch_seconds()
    seen = spec["counts"]["train"] * len(epochs)  # items trained on (epochs run, early stopping included)
    result = {
        "pipeline": spec["pipeline"],
        "fit_s": fit_s,
        "epochs": len(epochs),
        "sentences_per_s": seen / fit_s,
        "first_step_s": clock.first_step - process_start,
        "epochs_cpu_s": clock.cpu_end - clock.cpu_start,
        "sentences_per_cpu_s": seen / max(clock.cpu_end - clock.cpu_start, 1e-9),
        "epoch_s": epochs,
        "later_epoch_s": later_epoch_seconds(epochs),
        "memory_kind": "GPU" if cuda else "RSS",
        "peak_memory_mb": (torch.cuda.max_memory_allocated() if cuda
                           else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20,
        "f1_name": "test entity F1" if spec["task"] == "ner" else "test macro F1",
        "f1": f1,
        "dev_f1": dev_f1,
        "torch_threads": torch.get_num_threads(),
    }
    if cuda:
        result["gpu"] = torch.cuda.get_device_name()
    if spec.get("keep_predictions"):  # the quality benchmark's paired bootstrap rescores them
        result["test_predictions"] = test_predictions
    with atomic_write(result_path) as handle:
        json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main(*sys.argv[1:3])
