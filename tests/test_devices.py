"""Device and precision selection (CUDA faked), the run's environment record, and the
modes modules are in while they train and validate."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from conftest import REPO, compose_config

from bertlab.config import ConfigError
from bertlab.trainer import trainer_kwargs


def _fake_cuda(monkeypatch, available: bool, bf16: bool = True):
    monkeypatch.setattr("bertlab.trainer._cuda_available", lambda: available)
    monkeypatch.setattr("bertlab.trainer._cuda_bf16", lambda: bf16)


@pytest.mark.parametrize(("cuda", "bf16", "expected"), [
    (True, True, ("gpu", "bf16-mixed")),      # Ampere and later (A100, H100)
    (True, False, ("gpu", "16-mixed")),       # V100, T4
    (False, False, ("cpu", "32")),
])
@pytest.mark.parametrize("task", ["train_ner", "train_tc"])
def test_default_trainer_picks_the_device_and_precision(task, cuda, bf16, expected, monkeypatch):
    _fake_cuda(monkeypatch, cuda, bf16)
    kwargs = trainer_kwargs(compose_config(task).trainer)
    assert (kwargs["accelerator"], kwargs["precision"]) == expected


@pytest.mark.parametrize(("overrides", "expected"), [
    (["trainer=cpu"], ("cpu", 1, "32")),
    (["trainer=gpu"], ("gpu", 1, "bf16-mixed")),
    (["trainer=ddp"], ("gpu", -1, "bf16-mixed")),
    (["trainer=gpu", "trainer.precision=32"], ("gpu", 1, "32")),
    (["trainer.gpus=1", "trainer.amp_level=O1", "trainer.precision=16"], ("gpu", 1, "16-mixed")),  # the course
])
def test_presets_and_course_keys_force_a_choice(overrides, expected, monkeypatch):
    _fake_cuda(monkeypatch, True)
    kwargs = trainer_kwargs(compose_config("train_ner", overrides).trainer)
    assert (kwargs["accelerator"], kwargs["devices"], kwargs["precision"]) == expected


@pytest.mark.parametrize("overrides", [["trainer=gpu"], ["trainer=ddp"], ["trainer.gpus=1"]])
def test_gpu_without_cuda_is_a_config_error(overrides, monkeypatch):
    _fake_cuda(monkeypatch, False)
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        trainer_kwargs(compose_config("train_ner", overrides).trainer)


@pytest.mark.parametrize(("args", "fused"), [
    (("adamw", None, "cuda", "bf16-mixed", 1.0), True),
    (("adamw", None, "cuda", "32", 1.0), True),
    (("adamw", None, "cuda", "16-mixed", 0.0), True),
    (("adamw", None, "cuda", "16-mixed", 1.0), False),  # Lightning cannot clip after a fused unscale
    (("adamw", None, "cpu", "32", 1.0), True),
    (("adam", None, "cpu", "bf16-mixed", 1.0), True),
    (("adamw", None, None, "32", 1.0), False),          # parameters on more than one device type
    (("adamw", None, "meta", "32", 1.0), False),        # no fused kernel there
    (("adamw", False, "cuda", "bf16-mixed", 1.0), False),  # model.optim.fused=false
    (("sgd", None, "cuda", "bf16-mixed", 1.0), False),
])
def test_fused_adamw_only_where_it_works(args, fused):
    from bertlab.trainer import use_fused_adamw

    assert use_fused_adamw(*args) is fused


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_train_script_with_trainer_gpu_without_cuda_prints_one_line(tiny_ner):
    result = subprocess.run([sys.executable, "scripts/train_ner.py", "trainer=gpu", f"data.dir={tiny_ner}"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "error: trainer.accelerator=gpu needs a CUDA GPU" in result.stderr
    assert "Traceback" not in result.stderr and "MisconfigurationException" not in result.stderr


@pytest.fixture(scope="module")
def probed_run(tiny_ner, tmp_path_factory):
    """A tiny NER run that records, from inside each step, which modules are in eval mode
    during training and in train mode during validation, and the batch widths."""
    from conftest import tiny_ner_run

    from bertlab.models import TokenClassifier

    seen = {"train_not_training": set(), "val_training": set(), "train_widths": set(), "steps": 0}
    training_step, validation_step = TokenClassifier.training_step, TokenClassifier.validation_step

    def probe_training(self, batch, batch_idx):
        seen["steps"] += 1
        seen["train_not_training"] |= {name for name, m in self.named_modules() if not m.training}
        seen["train_widths"].add(batch[0].shape[1])
        return training_step(self, batch, batch_idx)

    def probe_validation(self, batch, batch_idx, split="val"):
        seen["val_training"] |= {name for name, m in self.named_modules() if m.training}
        return validation_step(self, batch, batch_idx, split=split)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TokenClassifier, "training_step", probe_training)
        patch.setattr(TokenClassifier, "validation_step", probe_validation)
        run = tiny_ner_run(tiny_ner, tmp_path_factory.mktemp("probe"))
    return run, seen


def test_every_module_trains_in_training_steps_and_none_in_validation(probed_run):
    _, seen = probed_run
    assert seen["steps"] == 8
    assert seen["train_not_training"] == set()  # dropout active in BERT, the head and the loss
    assert seen["val_training"] == set()


def test_training_batches_are_cut_to_multiples_of_16(probed_run):
    _, seen = probed_run
    assert seen["train_widths"] and all(width % 16 == 0 for width in seen["train_widths"])


def test_run_records_the_environment_beside_the_unchanged_config(probed_run):
    run, _ = probed_run
    environment = yaml.safe_load((run.log_dir / "environment.yaml").read_text())
    assert environment["trainer"]["accelerator"] == "cpu" and environment["trainer"]["precision"] == "32"
    assert environment["device"]["cpu"] and environment["device"]["cpu_cores"] >= 1
    assert set(environment["versions"]) == {"python", "torch", "lightning", "nemo_toolkit", "transformers"}
    assert environment["versions"]["nemo_toolkit"].startswith("2.4")
    config = yaml.safe_load((run.log_dir / "config.yaml").read_text())
    assert (config["trainer"]["accelerator"], config["trainer"]["precision"]) == ("auto", "auto")  # as composed
    assert (run.log_dir / "config.yaml").read_text().startswith("# ran on cpu (")

    from bertlab.compare import _read_events

    _, hparams = _read_events(run.log_dir)
    assert hparams["environment.trainer.precision"] == "32"
    assert hparams["environment.versions.torch"] == environment["versions"]["torch"]


def test_encoder_uses_pytorch_sdpa_attention(probed_run):
    from bertlab.restore import restore_model

    model = restore_model(probed_run[0].nemo_path)
    assert model.bert_model.config._attn_implementation == "sdpa"
    from transformers.models.bert.modeling_bert import BertSdpaSelfAttention

    assert all(isinstance(layer.attention.self, BertSdpaSelfAttention) for layer in model.bert_model.encoder.layer)
