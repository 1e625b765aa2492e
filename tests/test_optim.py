"""The optimizer: layer-wise learning-rate decay (``model.layerwise_lr_decay``), a group per
encoder depth, each kept at its own rate by the default scheduler; fused AdamW on the CPU."""

from __future__ import annotations

import pytest
import torch
from conftest import compose_config, tiny_ner_run
from lightning.pytorch.callbacks import Callback
from omegaconf import open_dict

from bertlab.config import ConfigError, check_layerwise_lr_decay


class RecordRates(Callback):
    """Each step's learning rate per param group, and which parameters each group holds."""

    def __init__(self):
        self.rates, self.groups, self.fused = [], [], None

    def on_train_start(self, trainer, pl_module):
        self.fused = trainer.optimizers[0].defaults.get("fused")
        names = {id(p): name for name, p in pl_module.named_parameters()}
        self.groups = [[names[id(p)] for p in group["params"]] for group in trainer.optimizers[0].param_groups]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rates.append([group["lr"] for group in trainer.optimizers[0].param_groups])


def test_each_encoder_layer_trains_at_its_own_decayed_rate(tiny_ner, tmp_path):
    record = RecordRates()
    tiny_ner_run(tiny_ner, tmp_path, ["model.layerwise_lr_decay=0.5"], callbacks=[record])
    # MiniLM: the head, 6 encoder layers from the top down, the embeddings.
    assert len(record.groups) == 8
    assert all(name.startswith("classifier.") for name in record.groups[0])
    for depth, group in zip(range(6, 0, -1), record.groups[1:7]):
        assert {name.split(".")[3] for name in group} == {str(depth - 1)}, group  # bert_model.encoder.layer.<i>
    assert all(".embeddings." in name for name in record.groups[7])
    assert record.fused is True  # torch's fused AdamW, on the CPU too, takes the groups as they are
    flat = [name for group in record.groups for name in group]
    assert len(flat) == len(set(flat))
    head_rates = [rates[0] for rates in record.rates]
    assert head_rates == sorted(head_rates, reverse=True) and head_rates[0] > head_rates[-2] > 0  # it decays
    for rates in record.rates[:-1]:  # the last step reaches 0
        assert [rate / rates[0] for rate in rates] == pytest.approx([0.5**k for k in range(8)])


def test_the_default_scheduler_is_warmup_annealing_per_group():
    """PolynomialDecayAnnealing (the configs' default; power 1 by default) is the warmup and
    linear decay of NeMo's WarmupAnnealing, step for step, for a single group; the configs set
    no key that WarmupAnnealing would refuse, so the course's scheduler name still works."""
    from nemo.core.optim.lr_scheduler import PolynomialDecayAnnealing, WarmupAnnealing

    def rates(scheduler_class, **kwargs):
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
        scheduler = scheduler_class(optimizer, max_steps=50, warmup_ratio=0.1, **kwargs)
        seen = []
        for _ in range(55):
            optimizer.step()
            scheduler.step()
            seen.append(optimizer.param_groups[0]["lr"])
        return seen

    sched = compose_config("train_ner").model.optim.sched
    assert sched.name == "PolynomialDecayAnnealing" and not {"power", "cycle"} & set(sched)
    assert rates(PolynomialDecayAnnealing) == pytest.approx(rates(WarmupAnnealing), abs=1e-12)


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.layerwise_lr_decay=1.5"], r"expected a number in \(0, 1\]"),
    (["model.layerwise_lr_decay=0", ], r"expected a number in \(0, 1\]"),
    (["model.layerwise_lr_decay=0.8", "model.optim.sched.name=WarmupAnnealing"], "PolynomialDecayAnnealing"),
])
def test_decay_settings_that_cannot_work_are_config_errors(overrides, message):
    cfg = compose_config("train_tc", overrides)
    with pytest.raises(ConfigError, match=message):
        check_layerwise_lr_decay(cfg)


def test_no_decay_keeps_nemos_single_group():
    cfg = compose_config("train_tc")
    assert cfg.model.layerwise_lr_decay == 1.0
    with open_dict(cfg):
        cfg.model.optim.sched.name = "WarmupAnnealing"  # a single group: any scheduler will do
    check_layerwise_lr_decay(cfg)


@pytest.mark.parametrize("layerwise", [1.0, 0.5])
def test_biases_and_layernorms_can_train_without_weight_decay(layerwise, tiny_ner, tmp_path):
    seen = {}

    class RecordDecay(Callback):
        def on_train_start(self, trainer, pl_module):
            names = {id(p): name for name, p in pl_module.named_parameters()}
            groups = trainer.optimizers[0].param_groups
            grouped = [names[id(p)] for group in groups for p in group["params"]]
            assert sorted(grouped) == sorted(names.values()), "every parameter in exactly one group"
            for group in groups:
                seen.update({names[id(p)]: (group["weight_decay"], group["lr"]) for p in group["params"]})
            seen["first"] = names[id(groups[0]["params"][0])]

    run_overrides = ["model.decay_norms_and_biases=false", f"model.layerwise_lr_decay={layerwise}"]
    tiny_ner_run(tiny_ner, tmp_path, run_overrides, callbacks=[RecordDecay()])
    first = seen.pop("first")
    decays = {name: decay for name, (decay, _) in seen.items()}
    assert decays["bert_model.encoder.layer.0.attention.output.LayerNorm.weight"] == 0.0
    assert decays["bert_model.encoder.layer.0.attention.self.query.bias"] == 0.0
    assert decays["bert_model.encoder.layer.0.attention.self.query.weight"] == pytest.approx(0.01)
    assert decays["bert_model.embeddings.word_embeddings.weight"] == pytest.approx(0.01)
    rates = {seen[name][1] for name in ("bert_model.encoder.layer.0.attention.self.query.bias",
                                        "bert_model.encoder.layer.0.attention.self.query.weight")}
    assert len(rates) == 1, "a layer's vectors and matrices share its learning rate"
    if layerwise < 1.0:  # group 0, whose rate training logs, is still the head's, at the base rate
        assert first.startswith("classifier.")
        assert seen["bert_model.embeddings.word_embeddings.weight"][1] < seen[first][1]
    else:
        assert len({rate for _, rate in seen.values()}) == 1


def test_fused_adamw_clips_gradients_under_bf16_mixed_precision(tiny_ner, tmp_path):
    """Lightning's mixed-precision plugin refuses to clip for a fused optimizer; bertlab clips
    itself when no loss scaler is involved. Every step the optimizer takes sees the clipped norm
    (read after the step: Lightning computes the gradients in the closure that step() calls)."""
    norms = []

    class GradNorms(Callback):
        def on_train_start(self, trainer, pl_module):
            optimizer = trainer.optimizers[0]
            assert optimizer.defaults.get("fused") is True
            optimizer.register_step_post_hook(lambda opt, args, kwargs: norms.append(float(torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for g in opt.param_groups for p in g["params"]
                             if p.grad is not None])))))

    run = tiny_ner_run(tiny_ner, tmp_path, ["trainer.precision=bf16-mixed", "trainer.gradient_clip_val=0.01"],
                       callbacks=[GradNorms()])
    assert run.nemo_path.is_file() and len(norms) == 8
    assert max(norms) <= 0.01 * 1.001


class RecordEmbeddings(Callback):
    """The word embeddings and the first encoder layer's query weights at each epoch's start and
    at the end of training."""

    def __init__(self):
        self.snapshots = []

    def _take(self, pl_module):
        bert = pl_module.bert_model
        self.snapshots.append((bert.embeddings.word_embeddings.weight.detach().clone(),
                               bert.encoder.layer[0].attention.self.query.weight.detach().clone()))

    def on_train_epoch_start(self, trainer, pl_module):
        self._take(pl_module)

    def on_train_end(self, trainer, pl_module):
        self._take(pl_module)


def test_a_frozen_embedding_warm_start_moves_the_embeddings_after_its_epochs_only(tiny_ner, tmp_path):
    record = RecordEmbeddings()
    tiny_ner_run(tiny_ner, tmp_path, ["model.freeze_embeddings_epochs=1", "trainer.limit_train_batches=4"],
                 callbacks=[record])
    (start, start_layer), (second, second_layer), (end, _) = record.snapshots
    assert torch.equal(second, start)  # frozen through epoch 0: no step, no weight decay
    assert not torch.equal(second_layer, start_layer)  # while the encoder above trained
    assert not torch.equal(end, second)  # and trained from epoch 1 on


@pytest.mark.parametrize("value", [-1, 1.5, "two"])
def test_freeze_embeddings_epochs_is_a_non_negative_integer(value):
    from bertlab.config import check_types

    cfg = compose_config("train_ner", [f"model.freeze_embeddings_epochs={value}"])
    with pytest.raises(ConfigError, match="model.freeze_embeddings_epochs: expected a non-negative integer"):
        check_types(cfg)
