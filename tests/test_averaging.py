"""``model.average_last_epochs``: the final model is the mean of the last epochs' weights
(bertlab/averaging.py), in bertlab and in the quality benchmark's Hugging Face pipeline."""

from __future__ import annotations

import pytest
import torch
from conftest import NCBI_DIR, compose_config, tc_config
from lightning.pytorch.callbacks import Callback
from omegaconf import open_dict

from bertlab.averaging import RunningAverage
from bertlab.config import ConfigError, check_types


def test_running_average_is_the_mean_of_the_floating_point_state():
    module = torch.nn.BatchNorm1d(3)  # float weights and buffers, and an integer buffer
    states = []
    average = RunningAverage()
    for step in range(3):
        with torch.no_grad():
            module.weight.normal_()
            module.running_mean.normal_()
            module.num_batches_tracked.fill_(step)
        states.append({k: v.clone() for k, v in module.state_dict().items()})
        average.update(module)
    target = torch.nn.BatchNorm1d(3)
    average.copy_to(target)
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert torch.allclose(target.state_dict()[name], torch.stack([s[name] for s in states]).mean(0), atol=1e-6)
    assert target.num_batches_tracked.item() == 0  # not averaged: the target keeps its own


class RecordEpochEnds(Callback):
    """The classifier's last layer and one encoder matrix at the end of every training epoch."""

    def __init__(self):
        self.weights = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.weights.append({name: value.detach().clone() for name, value in pl_module.state_dict().items()
                             if name in NAMES})


NAMES = ("classifier.mlp.layer2.weight", "bert_model.encoder.layer.0.attention.self.query.weight")


def test_the_saved_model_is_the_mean_of_the_last_epochs(tiny_tc3, tmp_path):
    from bertlab.predict import Predictor
    from bertlab.train import train

    cfg = tc_config(tiny_tc3, tmp_path, ["model.average_last_epochs=2"])
    with open_dict(cfg):
        cfg.trainer.update(max_epochs=3, max_steps=-1, limit_train_batches=2, val_check_interval=1.0)
    record = RecordEpochEnds()
    run = train(cfg, callbacks=(record,))
    assert len(record.weights) == 3
    saved = Predictor.load(run.nemo_path, device="cpu").model.state_dict()
    for name in NAMES:
        last_two = torch.stack([epoch[name] for epoch in record.weights[1:]]).mean(0)
        assert torch.allclose(saved[name], last_two, atol=1e-6)
        assert not torch.allclose(saved[name], record.weights[-1][name], atol=1e-6)  # the test can tell
    log = (run.log_dir / "train.log").read_text()
    assert "the averaged weights: val_macro_f1=" in log
    assert run.best_val is not None and 0 <= run.best_val <= 1  # the averaged model's dev score
    # trainer.validate() on the averaged weights writes no checkpoint: the best epoch's stays
    best = torch.load(run.log_dir / "checkpoints" / "best.weights.ckpt", weights_only=True)["state_dict"]
    assert any(torch.equal(best[NAMES[0]], epoch[NAMES[0]]) for epoch in record.weights)


def test_a_resumed_run_averages_the_epochs_before_the_interruption(tiny_tc3, tmp_path):
    from bertlab.predict import Predictor
    from bertlab.train import train

    def run(max_steps, record=None):
        cfg = tc_config(tiny_tc3, tmp_path, ["model.average_last_epochs=2", "exp_manager.resume_if_exists=true",
                                             "exp_manager.version=resumable",
                                             "exp_manager.resume_ignore_no_checkpoint=true"])
        with open_dict(cfg):
            cfg.trainer.update(max_epochs=3, max_steps=max_steps, limit_train_batches=2, val_check_interval=1.0)
        return train(cfg, callbacks=(record,) if record else ())

    first = run(4)  # stops after epoch 2 of 3, the first of the two averaged
    state = torch.load(first.log_dir / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    saved = state["EpochWeightAverage{epochs=2}"]
    assert saved["count"] == 1
    record = RecordEpochEnds()
    second = run(6, record)
    assert len(record.weights) == 2  # Lightning ends epoch 2 again on resuming, then epoch 3
    assert torch.equal(record.weights[0][NAMES[0]], saved["mean"][NAMES[0]])
    final = Predictor.load(second.nemo_path, device="cpu").model.state_dict()
    for name in NAMES:
        expected = (saved["mean"][name] + record.weights[1][name]) / 2
        assert torch.allclose(final[name], expected, atol=1e-6)


@pytest.mark.parametrize("overrides", [["model.average_last_epochs=7", "trainer.max_epochs=6"],
                                       ["model.average_last_epochs=-1"]])
def test_averaging_more_epochs_than_the_run_has_is_a_config_error(overrides):
    cfg = compose_config("train_tc", ["model.dataset.num_classes=3", *overrides])
    with pytest.raises(ConfigError, match="model.average_last_epochs"):
        check_types(cfg)


def test_hugging_face_averages_the_last_epochs(tmp_path):
    from bertlab.bench_speed import prepare_data, prepare_encoder, run_pipeline

    counts = prepare_data("tc", NCBI_DIR, tmp_path / "data", 24, 12)
    spec = {"task": "tc", "device": "cpu", "precision": "32", "encoder": prepare_encoder("tiny-random", tmp_path, 0),
            "encoder_name": "tiny-random", "data_dir": str(tmp_path / "data"), "counts": counts, "seed": 1,
            "hf": {"epochs": 2, "batch_size": 8, "max_seq_length": 64, "warmup_ratio": 0.1, "weight_decay": 0.01,
                   "lr": 1e-4, "average_last_epochs": 2}}
    result = run_pipeline("hf", spec, tmp_path)
    assert "error" not in result, result.get("error")
    assert 0 <= result["f1"] <= 1 and 0 <= result["dev_f1"] <= 1
    bad = run_pipeline("hf", {**spec, "hf": {**spec["hf"], "average_last_epochs": 3}}, tmp_path, name="bad")
    assert "average_last_epochs: expected 1 to epochs (2), got 3" in bad["error"]


def test_hugging_face_callback_averages_the_last_epochs_only():
    from types import SimpleNamespace

    from bertlab.bench_speed_worker import epoch_weight_average

    callback = epoch_weight_average(2, max_epochs=3)
    module = torch.nn.Linear(2, 2)
    for epoch in (1, 2, 3):
        with torch.no_grad():
            module.weight.fill_(epoch)
        callback.on_epoch_end(None, SimpleNamespace(epoch=float(epoch)), None, model=module)
    target = torch.nn.Linear(2, 2)
    callback.average.copy_to(target)
    assert torch.equal(target.weight, torch.full((2, 2), 2.5))  # epochs 2 and 3
