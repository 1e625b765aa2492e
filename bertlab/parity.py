"""Step-for-step parity of bertlab's training with the Hugging Face ``Trainer`` baseline, for
text classification and NER (``scripts/check_parity.py``).

The quality benchmark compares two pipelines whose random draws differ: the head's initial
weights, the data order and dropout. Three seeds a side cannot tell those draws from a real
difference in the training itself. Here the draws are taken away: both pipelines start from
the same weights (bertlab's seeded head copied into Hugging Face's), read the same examples
in the same order (no shuffling), with every dropout at 0, and train through their own
loops: bertlab's Lightning ``Trainer`` over NeMo's model and data, Hugging Face's ``Trainer``
over its tokenizer and collator, as the quality benchmark runs it. If the two trainings are
the same, the losses agree at every step and so do the final weights; what remains is the
arithmetic order (fused AdamW against the per-tensor loop, padded widths), far below the
size of an update.

Only what both pipelines can train is compared: bertlab gets Hugging Face's head and loss
(``HEAD_OVERRIDES``): for TC, ``[CLS]`` through the pretrained pooler into one linear layer,
as ``BertForSequenceClassification``; for NER, one linear layer over every subtoken with the
loss on each word's first subtoken, as ``BertForTokenClassification`` under run_ner.py.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from omegaconf import DictConfig

from bertlab.config import ConfigError


def zero_dropout(model) -> int:
    """Every dropout of ``model`` set to 0 (modules, and the attention probability Hugging
    Face's SDPA attention reads); returns how many modules had a non-zero rate."""
    import torch

    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout) and module.p:
            module.p, changed = 0.0, changed + 1
        if getattr(module, "dropout_prob", 0):
            module.dropout_prob = 0.0
    return changed


def dropout_rates(model) -> list[float]:
    """The rates of ``model``'s dropout modules, in module order."""
    import torch

    return [module.p for module in model.modules() if isinstance(module, torch.nn.Dropout)]


def _head_linear(model):
    """The one linear layer of a NeMo head of one layer (``SequenceClassifier``, ``TokenClassifier``)."""
    import torch

    layers = [m for m in model.classifier.modules() if isinstance(m, torch.nn.Linear)]
    if len(layers) != 1:
        raise ConfigError(f"parity needs a head of one linear layer, as Hugging Face's; this one has {len(layers)}")
    return layers[0]


def check_comparable(cfg: DictConfig) -> None:
    """A :class:`ConfigError` unless bertlab's ``cfg`` is a training the ``Trainer`` can do."""
    if cfg.task == "text_classification":
        head = cfg.model.classifier_head
        if head.get("pooling", "cls") != "pooler" or head.num_output_layers != 1:
            raise ConfigError("parity needs Hugging Face's head in bertlab: model.classifier_head.pooling=pooler and "
                              f"model.classifier_head.num_output_layers=1 (got pooling={head.get('pooling')}, "
                              f"num_output_layers={head.num_output_layers})")
        if cfg.model.dataset.get("long_text", "head") != "head":
            raise ConfigError("parity needs model.dataset.long_text=head: the Trainer's tokenizer keeps a text's head")
    else:
        data = cfg.model.dataset
        if cfg.model.head.num_fc_layers != 1 or not data.ignore_extra_tokens or not data.ignore_start_end:
            raise ConfigError("parity needs Hugging Face's head and loss in bertlab: model.head.num_fc_layers=1, "
                              "model.dataset.ignore_extra_tokens=true and model.dataset.ignore_start_end=true "
                              f"(got {cfg.model.head.num_fc_layers}, {data.ignore_extra_tokens}, "
                              f"{data.ignore_start_end})")
        if data.get("context", "sentence") != "sentence":
            raise ConfigError("parity needs model.dataset.context=sentence: the Trainer reads one sentence a row")
    if cfg.model.dataset.get("class_balancing"):
        raise ConfigError("parity does not cover model.dataset.class_balancing: the Trainer's loss is unweighted")
    if cfg.model.get("layerwise_lr_decay", 1.0) != 1.0 or cfg.model.get("freeze_embeddings_epochs", 0):
        raise ConfigError("parity does not cover model.layerwise_lr_decay or model.freeze_embeddings_epochs: "
                          "the Trainer has neither")


# Hugging Face's head and loss in bertlab, per task (see the module docstring), and TC's three classes.
HEAD_OVERRIDES = {
    "tc": ["model.classifier_head.pooling=pooler", "model.classifier_head.num_output_layers=1",
           "model.dataset.long_text=head", "model.dataset.num_classes=3"],
    "ner": ["model.head.num_fc_layers=1", "model.dataset.ignore_extra_tokens=true",
            "model.dataset.ignore_start_end=true", "model.dataset.context=sentence",
            "model.freeze_embeddings_epochs=0", "model.propagate_abbreviations=false"],
}
CONFIG_NAMES = {"tc": "train_tc", "ner": "train_ner"}


def compose_bertlab(task: str, recipe: dict, seed: int, epochs: int, num_samples: int, data_dir: str | None = None,
                    overrides: tuple[str, ...] = ()) -> DictConfig:
    """conf/train_<task>.yaml training a Hugging Face ``recipe`` (learning rate, warmup, length,
    batch, weight decay) with Hugging Face's head, on the CPU in full precision, ``epochs`` over
    the first ``num_samples`` training items in file order; then any further ``overrides``."""
    from hydra import compose, initialize_config_dir

    from bertlab.bench_speed import REPO
    from bertlab.config import register_resolvers

    register_resolvers()
    settings = [*HEAD_OVERRIDES[task], "model.decay_norms_and_biases=false", "trainer=cpu", "trainer.precision=32",
                f"seed={seed}", f"trainer.max_epochs={epochs}", f"model.train_ds.num_samples={num_samples}",
                "model.train_ds.shuffle=false", "model.dataset.length_buckets=false",
                f"model.optim.lr={recipe['lr']}", f"model.optim.sched.warmup_ratio={recipe['warmup_ratio']}",
                f"model.dataset.max_seq_length={recipe['max_seq_length']}",
                f"model.train_ds.batch_size={recipe['batch_size']}",
                f"model.optim.weight_decay={recipe['weight_decay']}"]
    if data_dir:
        settings.append(f"data.dir={data_dir}")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name=CONFIG_NAMES[task], overrides=[*settings, *overrides])


def training_items(cfg: DictConfig) -> list:
    """bertlab's training split as the ``Trainer`` reads it: NER sentences, TC (text, label) rows."""
    if cfg.task == "text_classification":
        from bertlab.data.tsv import read_labeled_tsv

        return read_labeled_tsv(cfg.model.train_ds.file_path).rows
    from bertlab.data.iob import read_nemo

    data = Path(cfg.model.dataset.data_dir)
    return read_nemo(data / cfg.model.train_ds.text_file, data / cfg.model.train_ds.labels_file)


def hf_recipe(candidate: str, grid: dict, epochs: int) -> dict:
    if candidate not in grid["hf"]:
        raise ConfigError(f"--hf-candidate: {candidate!r} is not in the grid's hf recipes")
    from bertlab.bench_speed_worker import HF_RECIPE_KEYS

    recipe = {**grid["hf_defaults"], **grid["hf"][candidate], "epochs": epochs}
    # The Trainer's class weights and averaged weights have no counterpart here; NER's
    # abbreviation step (propagate_abbreviations) decodes after training and plays no part.
    unsupported = set(recipe) - (HF_RECIPE_KEYS - {"class_weights", "average_last_epochs"})
    if unsupported:
        raise ConfigError(f"--hf-candidate {candidate}: parity does not cover {', '.join(sorted(unsupported))}")
    return recipe


def warmup_steps(recipe: dict, steps: int) -> dict[str, int]:
    """Each pipeline's warmup for ``steps`` updates at the recipe's ratio: NeMo's schedulers
    round the ratio's steps down, the ``Trainer`` rounds them up."""
    return {"bertlab": int(recipe["warmup_ratio"] * steps), "hf": math.ceil(recipe["warmup_ratio"] * steps)}


def train_bertlab(cfg: DictConfig) -> dict:
    """bertlab's training of ``cfg`` (from :func:`compose_bertlab`, checked by
    :func:`check_comparable`; its Lightning trainer and NeMo model, no validation, no
    checkpoints), dropout off and the data in file order. Returns the initial head, the
    per-step losses, learning rates and inputs, and the final weights by Hugging Face's names."""
    import lightning.pytorch as pl

    from bertlab.tasks import task_spec
    from bertlab.trainer import trainer_kwargs

    kwargs = {**trainer_kwargs(cfg.trainer), "logger": False, "enable_checkpointing": False,
              "limit_val_batches": 0, "enable_progress_bar": False}
    pl.seed_everything(cfg.seed, workers=True)
    steps: list[dict] = []

    class Recorder(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            ids, mask = batch[0], batch[2]
            steps.append({"lr": trainer.optimizers[0].param_groups[0]["lr"],  # the rate this step uses
                          "inputs": [row[m.bool()].tolist() for row, m in zip(ids, mask)]})

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            steps[-1]["loss"] = float(outputs["loss"])

    trainer = pl.Trainer(**kwargs, callbacks=[Recorder()])
    model = task_spec(cfg.task).model_class(cfg.model, trainer=trainer)
    head = _head_linear(model)
    initial_head = {"weight": head.weight.detach().clone(), "bias": head.bias.detach().clone()}
    dropout = dropout_rates(model)
    zero_dropout(model)
    trainer.fit(model)
    weights = {f"bert.{name}": value.detach().clone() for name, value in model.bert_model.state_dict().items()}
    weights.update({"classifier.weight": head.weight.detach().clone(), "classifier.bias": head.bias.detach().clone()})
    label_ids = dict(model.cfg.label_ids) if cfg.task == "token_classification" else None
    return {"initial_head": initial_head, "steps": steps, "weights": weights, "dropout": dropout,
            "label_ids": label_ids}


def train_hf(encoder: str, items: list, recipe: dict, seed: int, initial_head: dict, work_dir: Path,
             label_ids: dict[str, int] | None = None) -> dict:
    """The quality benchmark's Hugging Face ``Trainer`` (its ``recipe`` keys, as in
    ``conf/quality/<task>.yaml``) over ``items`` in order (TC: (text, label) rows; NER:
    sentences, tagged with bertlab's ``label_ids``), starting from ``initial_head``, dropout off."""
    import torch
    import transformers
    from torch.utils.data import SequentialSampler
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    from bertlab.bench_speed_worker import hf_classified_item, hf_tag_labels, hf_tagged_item, hf_training_settings

    transformers.set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    limit, num_labels = recipe["max_seq_length"], len(initial_head["bias"])
    if label_ids is None:
        data = [hf_classified_item(tokenizer, text, label, limit) for text, label in items]
        model = transformers.AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=num_labels)
        collator = transformers.DataCollatorWithPadding(tokenizer)
    else:
        trainer_order = hf_tag_labels(items)
        if sorted(label_ids, key=label_ids.get) != trainer_order:
            raise ValueError(f"bertlab's label ids {label_ids} are not in the Trainer's order {trainer_order}")
        data = [hf_tagged_item(tokenizer, sentence, label_ids, limit) for sentence in items]
        model = transformers.AutoModelForTokenClassification.from_pretrained(encoder, num_labels=num_labels)
        collator = transformers.DataCollatorForTokenClassification(tokenizer)
    with torch.no_grad():
        model.classifier.weight.copy_(initial_head["weight"])
        model.classifier.bias.copy_(initial_head["bias"])
    dropout = dropout_rates(model)
    zero_dropout(model)
    initial = {name: value.detach().clone() for name, value in model.state_dict().items()}
    steps: list[dict] = []

    class InOrderTrainer(Trainer):
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

        def training_step(self, model, inputs, *args, **kwargs):
            lr = self.optimizer.param_groups[0]["lr"]
            loss = super().training_step(model, inputs, *args, **kwargs)
            steps.append({"loss": float(loss), "lr": lr,
                          "inputs": [row[m.bool()].tolist() for row, m in zip(inputs["input_ids"],
                                                                                inputs["attention_mask"])]})
            return loss

    args = TrainingArguments(
        output_dir=str(work_dir), **hf_training_settings(recipe), use_cpu=True, eval_strategy="no",
        save_strategy="no", logging_steps=1, report_to=[], disable_tqdm=True, seed=seed, dataloader_num_workers=0)
    trainer = InOrderTrainer(model=model, args=args, train_dataset=data, data_collator=collator)
    trainer.train()
    weights = {name: value.detach().clone() for name, value in model.state_dict().items()}
    return {"steps": steps, "weights": weights, "initial": initial, "dropout": dropout}


def run_parity(task: str, hf_candidate: str, grid_path: Path, seed: int, epochs: int, num_samples: int,
               work_dir: Path, data_dir: str | None = None, overrides: tuple[str, ...] = ()) -> dict:
    """A Hugging Face recipe of the task's grid trained by both pipelines from the same start
    (see the module docstring), and the comparison."""
    from omegaconf import OmegaConf

    grid = OmegaConf.to_container(OmegaConf.load(grid_path), resolve=True)
    recipe = hf_recipe(hf_candidate, grid, epochs)
    cfg = compose_bertlab(task, recipe, seed, epochs, num_samples, data_dir, overrides)
    check_comparable(cfg)  # before the imports of NeMo and transformers
    items = training_items(cfg)
    items = items[:num_samples] if num_samples > 0 else items
    warmup = warmup_steps(recipe, epochs * math.ceil(len(items) / recipe["batch_size"]))
    # The Trainer's count of warmup steps (see warmup_steps). Their shape still differs: NeMo's
    # warmup rate is (s + 1) / (w + 1) of the peak at step s, the Trainer's s / w.
    cfg.model.optim.sched.warmup_steps, cfg.model.optim.sched.warmup_ratio = warmup["hf"], None
    ours = train_bertlab(cfg)
    theirs = train_hf(cfg.model.language_model.pretrained_model_name, items, recipe, seed, ours["initial_head"],
                      work_dir, ours["label_ids"])
    report = compare(ours, theirs)
    report.update(task=task, hf_candidate=hf_candidate, overrides=list(overrides), seed=seed, epochs=epochs,
                  num_samples=num_samples, warmup_steps=warmup)
    return report


# A key projection's bias adds the same amount to every score of a query, which softmax
# ignores: its true gradient is 0, and what moves it is rounding, different in each pipeline.
ZERO_GRADIENT_SUFFIX = "attention.self.key.bias"


def compare(bertlab: dict, hf: dict) -> dict:
    """Step by step: both losses and learning rates, and whether the inputs were the same;
    then how far apart the two final models are, as a share of how far Hugging Face's
    training moved its weights from the shared start: over all weights, and the worst
    parameter (key biases aside: see ``ZERO_GRADIENT_SUFFIX``). Also both models' dropout
    rates, which the comparison sets to 0."""
    steps = []
    for index, (ours, theirs) in enumerate(zip(bertlab["steps"], hf["steps"]), start=1):
        steps.append({"step": index, "bertlab_loss": ours["loss"], "hf_loss": theirs["loss"], "bertlab_lr": ours["lr"],
                      "hf_lr": theirs["lr"], "same_inputs": ours["inputs"] == theirs["inputs"]})
    initial = hf["initial"]
    shared = sorted(set(bertlab["weights"]) & set(hf["weights"]))
    moved_total = apart_total = 0.0
    relative = {}
    for name in shared:
        moved = (hf["weights"][name].float() - initial[name].float()).norm().item()
        apart = (bertlab["weights"][name].float() - hf["weights"][name].float()).norm().item()
        moved_total, apart_total = moved_total + moved ** 2, apart_total + apart ** 2
        if moved > 0 and not name.endswith(ZERO_GRADIENT_SUFFIX):
            relative[name] = apart / moved
    worst = max(relative, key=relative.get) if relative else None
    return {"steps": steps, "step_counts": [len(bertlab["steps"]), len(hf["steps"])],
            "compared_parameters": len(shared), "model_relative_gap": math.sqrt(apart_total / moved_total)
            if moved_total else math.nan, "worst_parameter": worst, "worst_relative_gap": relative.get(worst, math.nan),
            "missing": sorted((set(hf["weights"]) ^ set(bertlab["weights"])) - {"bert.embeddings.position_ids"}),
            "dropout": {"bertlab": sorted(bertlab["dropout"]), "hf": sorted(hf["dropout"])},
            "relative_gaps": relative}


def format_report(report: dict) -> str:
    lines = ["| step | same inputs | bertlab loss | HF loss | bertlab lr | HF lr |",
             "| ---: | :---: | ---: | ---: | ---: | ---: |"]
    for s in report["steps"]:
        lines.append(f"| {s['step']} | {'yes' if s['same_inputs'] else 'NO'} | {s['bertlab_loss']:.6f} | "
                     f"{s['hf_loss']:.6f} | {s['bertlab_lr']:.3e} | {s['hf_lr']:.3e} |")
    warmup = report["warmup_steps"]
    lines += ["", f"steps: bertlab {report['step_counts'][0]}, Hugging Face {report['step_counts'][1]}; "
              f"warmup: {warmup['hf']} steps on both sides (the Trainer's count; by the ratio NeMo would round "
              f"to {warmup['bertlab']})",
              f"dropout rates (set to 0 here): bertlab {_rates(report['dropout']['bertlab'])}, "
              f"Hugging Face {_rates(report['dropout']['hf'])}",
              f"final weights apart, as a share of the update: {report['model_relative_gap']:.2e} over all "
              f"{report['compared_parameters']} parameters; at most {report['worst_relative_gap']:.2e} "
              f"({report['worst_parameter']}, key biases aside)"]
    if report["missing"]:
        lines.append(f"parameters in one model only: {', '.join(report['missing'])}")
    return "\n".join(lines)


def _rates(rates: list[float]) -> str:
    counts = Counter(rates)
    return ", ".join(f"{n} x {rate:g}" for rate, n in sorted(counts.items()))
