"""Experiment tracking: run directories, checkpoints, early stopping, file modes, multirun
sweeps (grid and Optuna), seed groups in the comparison, and TensorBoard serving a run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch
from conftest import REPO, compose_config, forbid_network, tc_config
from omegaconf import OmegaConf, open_dict
from test_train_tc import scalar_tags

from bertlab.train import train

TINY_TC = ["model.dataset.num_classes=3", "model.dataset.max_seq_length=64", "model.train_ds.batch_size=8",
           "model.validation_ds.batch_size=24", "model.test_ds.batch_size=24", "trainer.enable_progress_bar=false",
           "trainer.log_every_n_steps=1"]


@pytest.fixture
def umask():
    """Set the process umask for a test; restore it after."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


@pytest.fixture(scope="module")
def checkpointed_run(tiny_tc3, tmp_path_factory):
    """Four validations (every 2 of 8 steps), early stopping off."""
    cfg = tc_config(tiny_tc3, tmp_path_factory.mktemp("exp"))
    with open_dict(cfg):
        cfg.trainer.update(max_steps=8, val_check_interval=2)
    with forbid_network():
        return train(cfg)


def test_checkpoints_are_named_by_what_they_hold(checkpointed_run):
    checkpoints = checkpointed_run.log_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.weights.ckpt", "last.ckpt"]
    # Both load without unpickling code (plain containers and tensors only).
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    best = torch.load(checkpoints / "best.weights.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 8 and last["optimizer_states"], "last: the full state, for resuming"
    assert "optimizer_states" not in best and best["monitor"] == "val_macro_f1"
    assert set(best["state_dict"]) == set(last["state_dict"])
    scores = scalar_tags(checkpointed_run.log_dir)["val_macro_f1"]
    assert len(scores) == 4
    assert best["score"] == pytest.approx(max(scores)) == pytest.approx(checkpointed_run.best_val)


def test_one_checkpoint_write_per_validation(tiny_tc3, tmp_path, monkeypatch):
    import lightning.pytorch as pl

    writes = []
    save = pl.Trainer.save_checkpoint
    monkeypatch.setattr(pl.Trainer, "save_checkpoint",
                        lambda self, path, *a, **k: (writes.append((self.global_step, Path(path).name)),
                                                     save(self, path, *a, **k))[1])
    cfg = tc_config(tiny_tc3, tmp_path)
    with open_dict(cfg):
        cfg.trainer.update(max_steps=6, val_check_interval=2)
    train(cfg)
    assert [step for step, _ in writes] == [2, 4, 6], writes


def test_background_checkpoint_writes_hold_the_state_at_save_time(tmp_path):
    from bertlab.checkpoints import BackgroundCheckpointIO

    io, weights, seen = BackgroundCheckpointIO(), torch.zeros(1000), []
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": weights}, "loops": [weights]}, path,
                       storage_options={"then": lambda: seen.append(path.is_file())})
    weights += 1  # the next optimizer step, while the writer may still be writing
    io.wait()
    saved = io.load_checkpoint(path)
    assert seen == [True], "'then' runs once the file is in place"
    assert saved["state_dict"]["w"].eq(0).all() and saved["loops"][0].eq(0).all()
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_failed_background_write_is_raised_and_leaves_no_file(tmp_path):
    from bertlab.checkpoints import BackgroundCheckpointIO

    io = BackgroundCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "unpicklable": lambda: None}, tmp_path / "last.ckpt")
    with pytest.raises(Exception, match="pickle|lambda"):
        io.wait()
    assert list(tmp_path.iterdir()) == []
    io.wait()  # reported once


def test_no_checkpoints_when_switched_off(tiny_tc3, tmp_path):
    cfg = tc_config(tiny_tc3, tmp_path, ["exp_manager.create_checkpoint_callback=false"])
    result = train(cfg)
    assert not (result.log_dir / "checkpoints").exists() and result.best_val is None
    assert result.nemo_path.is_file()


def test_early_stopping_stops_on_the_monitored_dev_metric(tiny_tc3, tmp_path):
    # min_delta=1: no validation after the first counts as an improvement; patience 1 stops at the second.
    cfg = tc_config(tiny_tc3, tmp_path, ["exp_manager.create_early_stopping_callback=true",
                                         "exp_manager.early_stopping_callback_params.patience=1",
                                         "exp_manager.early_stopping_callback_params.min_delta=1.0"])
    with open_dict(cfg):
        cfg.trainer.update(max_steps=40, max_epochs=20, val_check_interval=2)
    assert cfg.exp_manager.early_stopping_callback_params.monitor == "val_macro_f1"
    assert cfg.exp_manager.early_stopping_callback_params.mode == "max"
    result = train(cfg)
    assert len(scalar_tags(result.log_dir)["val_macro_f1"]) == 2
    assert torch.load(result.log_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_outputs_follow_the_umask(mask, umask, tiny_tc3, tmp_path):
    umask(mask)
    result = train(tc_config(tiny_tc3, tmp_path))
    expected = 0o666 & ~mask
    for name in ("metrics.json", "predictions.tsv", "config.yaml", "command.txt", "train.log",
                 "checkpoints/last.ckpt", result.nemo_path.name):
        assert (result.log_dir / name).stat().st_mode & 0o777 == expected, name


def test_concurrent_runs_never_share_a_directory(tmp_path):
    from bertlab.runs import claim_version

    exp_cfg = OmegaConf.create({"exp_dir": str(tmp_path), "name": "ner", "version": None, "resume_if_exists": False})
    versions = [claim_version(exp_cfg) for _ in range(3)]  # same second
    assert len(set(versions)) == 3 and all((tmp_path / "ner" / v).is_dir() for v in versions)


def _train_script(script: str, args: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, str(REPO / "scripts" / script), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900, env=env)


def test_multirun_over_seeds_gives_separate_runs_and_one_grouped_row(tiny_tc3, tmp_path):
    from bertlab.compare import compare

    done = _train_script("train_tc.py", ["-m", "seed=1,2", f"data.dir={tiny_tc3}", f"exp_manager.exp_dir={tmp_path}",
                                         "trainer.max_steps=4", "trainer.val_check_interval=2", *TINY_TC])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sweep,) = (tmp_path / "text_classification").iterdir()
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0_seed=1", "1_seed=2"]
    for seed, job in zip((1, 2), jobs):
        run = sweep / job
        assert OmegaConf.load(run / "config.yaml").seed == seed
        assert len(scalar_tags(run)["train_loss"]) == 4, "each job logs its own steps, once"
        assert {p.name for p in (run / "checkpoints").iterdir()} == {"best.weights.ckpt", "last.ckpt"}
        assert json.loads((run / "metrics.json").read_text())["macro_f1"] >= 0
        assert (run / "text_classification.nemo").is_file() and (run / "train.log").is_file()
    # Each log line once, no NeMo example dumps.
    assert done.stdout.count("Seed set to") == 2 and "*** Example ***" not in done.stdout

    result = compare([tmp_path], plot_path=tmp_path / "curves.png")
    assert len(result.table) == 2
    (group,) = result.groups.to_dict("records")
    assert (group["n"], group["seeds"], group["best"]) == (2, "1,2", "*")
    assert group["test_macro_f1 std"] is not None and group["test_macro_f1 std"] >= 0
    assert "±" in result.markdown


def test_optuna_sweep_maximises_the_dev_metric(tiny_ner, tmp_path):
    done = _train_script("train_ner.py", [
        "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", f"data.dir={tiny_ner}",
        f"exp_manager.exp_dir={tmp_path}", "trainer.max_steps=2", "trainer.val_check_interval=2",
        "model.dataset.max_seq_length=64", "model.validation_ds.batch_size=48", "model.test_ds.batch_size=48",
        "trainer.enable_progress_bar=false"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sweep,) = (tmp_path / "ner").iterdir()
    runs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name.split("_", 1)[0] for p in runs] == ["0", "1"]
    assert all("model.optim.lr=" in p.name for p in runs)
    best_dev = [max(scalar_tags(run)["val_entity_f1"]) for run in runs]
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_value == pytest.approx(max(best_dev), abs=1e-6)  # the dev score, not the test score
    lrs = {OmegaConf.load(run / "config.yaml").model.optim.lr for run in runs}
    assert len(lrs) == 2 and all(1e-5 <= lr <= 3e-4 for lr in lrs)


def test_slurm_launcher_preset_composes():
    cfg = compose_config("train_ner", ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], return_hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.nodes) == ("gpu", 1, 1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_tensorboard_serves_a_runs_scalars(checkpointed_run):
    port = _free_port()
    tensorboard = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen([str(tensorboard), "--logdir", str(checkpointed_run.log_dir), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/data/plugin/scalars"
    try:
        deadline, tags = time.monotonic() + 90, {}
        while time.monotonic() < deadline and not tags.get(".", {}).get("val_macro_f1"):
            assert server.poll() is None, server.stdout.read()[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/tags", timeout=5) as response:
                    tags = json.load(response)
            except OSError:
                time.sleep(1)
        assert {"train_loss", "val_macro_f1", "test_macro_f1"} <= set(tags["."])
        query = urllib.parse.urlencode({"run": ".", "tag": "val_macro_f1"})
        with urllib.request.urlopen(f"{base}/scalars?{query}", timeout=10) as response:
            points = json.load(response)  # [wall_time, step, value] each
        assert [p[2] for p in points] == pytest.approx(scalar_tags(checkpointed_run.log_dir)["val_macro_f1"])
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("verbose", [False, True])
def test_nemo_example_dumps_and_repeated_warnings_only_when_verbose(verbose):
    import logging

    from bertlab.logs import quiet_nemo

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    nemo_logger = logging.getLogger("nemo_logger")
    nemo_logger.addHandler(handler)
    level = nemo_logger.level
    nemo_logger.setLevel(logging.INFO)
    try:
        quiet_nemo(verbose)
        for message in ("*** Example ***", "input_ids: 101 7987 3540", "Read 592 examples from train.tsv"):
            nemo_logger.info(message)
        for _ in range(3):
            nemo_logger.warning(f"Apex was not found ({verbose}).")  # unique: the filter remembers warnings
    finally:
        nemo_logger.removeHandler(handler)
        nemo_logger.setLevel(level)
        quiet_nemo(True)
    if verbose:
        assert len(seen) == 6
    else:
        assert seen == ["Read 592 examples from train.tsv", "Apex was not found (False)."]


def test_an_encoder_that_cannot_be_loaded_is_a_one_line_error(tiny_ner, tmp_path):
    # No network here (nor in CI), and the name is in no cache: transformers cannot load it.
    done = _train_script("train_ner.py", ["model.language_model.pretrained_model_name=nosuchorg/nosuchbert",
                                          f"data.dir={tiny_ner}", f"exp_manager.exp_dir={tmp_path}"])
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: model.language_model.pretrained_model_name: cannot load 'nosuchorg/nosuchbert'")


def test_model_is_saved_whole_or_not_at_all(tmp_path):
    from bertlab.train import save_model

    class KilledWhileSaving:
        def save_to(self, path):
            Path(path).write_bytes(b"half an archive")
            raise KeyboardInterrupt

    target = tmp_path / "ner.nemo"
    target.write_bytes(b"the previous model")
    with pytest.raises(KeyboardInterrupt):
        save_model(KilledWhileSaving(), target)
    assert target.read_bytes() == b"the previous model" and [p.name for p in tmp_path.iterdir()] == ["ner.nemo"]


@pytest.mark.parametrize(("override", "message"), [
    ("trainer.max_epochs=abc", "trainer.max_epochs: expected an integer, got 'abc'"),
    ("model.train_ds.batch_size=0", "model.train_ds.batch_size: expected a positive integer, got 0"),
    ("model.optim.lr=fast", "model.optim.lr: expected a number, got 'fast'"),
    ("model.language_model.pretrained_model_name=/no/such/bert",
     "model.language_model.pretrained_model_name: /no/such/bert: no such directory (a local encoder is a Hugging "
     "Face model directory)"),
])
def test_wrong_types_are_one_line_errors_before_any_model(override, message, tmp_path):
    done = _train_script("train_ner.py", [override, f"exp_manager.exp_dir={tmp_path}"])
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == f"error: {message}"
    assert not list(tmp_path.iterdir()), "no run directory for a run that never started"


def test_same_seed_and_config_give_identical_results_on_cpu(tiny_tc3, tmp_path):
    first, second = (train(tc_config(tiny_tc3, tmp_path / name)) for name in ("a", "b"))
    for name in ("metrics.json", "predictions.tsv"):
        assert (first.log_dir / name).read_bytes() == (second.log_dir / name).read_bytes(), name


def test_run_records_seed_versions_commit_and_data_checksums(checkpointed_run, tiny_tc3):
    import hashlib

    record = OmegaConf.load(checkpointed_run.log_dir / "environment.yaml")
    assert record.seed == 42 and record.versions.nemo_toolkit.startswith("2.4")
    assert len(record.git.commit) == 40 and isinstance(record.git.changed, bool)
    files = sorted(tiny_tc3.glob("*_nemo_format.tsv"))
    assert dict(record.data_sha256) == {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_data_directories_are_only_read_and_never_unpickled(tiny_ner, tiny_tc3, tmp_path):
    import pickle
    import shutil

    from conftest import tiny_ner_run

    marker = tmp_path / "pwned"

    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    ner_data, tc_data = tmp_path / "ner", tmp_path / "tc"
    shutil.copytree(tiny_ner, ner_data)
    shutil.copytree(tiny_tc3, tc_data)
    # What NeMo 2.4 would unpickle from a data directory: class weights, and cached features.
    for planted in ("labels_train_weights.p", "cached__text_train.txt__labels_train.txt__planted"):
        (ner_data / planted).write_bytes(pickle.dumps(RunsCode()))
    before_ner, before_tc = _snapshot(ner_data), _snapshot(tc_data)

    run = tiny_ner_run(ner_data, tmp_path / "exp", ["model.dataset.class_balancing=weighted_loss",
                                                    "model.dataset.use_cache=true"])
    train(tc_config(tc_data, tmp_path / "exp", ["model.dataset.class_balancing=weighted_loss"]))
    assert not marker.exists()
    assert _snapshot(ner_data) == before_ner and _snapshot(tc_data) == before_tc, "nothing written there"
    assert json.loads((run.log_dir / "metrics.json").read_text())["entity"]["support"] > 0
