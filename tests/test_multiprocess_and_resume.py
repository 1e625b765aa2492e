"""DDP on two CPU processes (gloo) for both tasks, and resuming an interrupted run."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO, compose_config, shrink
from omegaconf import open_dict

from bertlab.train import train


@pytest.mark.parametrize(("script", "data", "extra"), [
    ("train_ner.py", "tiny_ner", []),
    ("train_tc.py", "tiny_tc3", ["model.dataset.num_classes=3"]),
])
def test_ddp_on_two_cpu_processes(script, data, extra, request, tmp_path):
    data_dir = request.getfixturevalue(data)
    command = [
        sys.executable, f"scripts/{script}", "trainer=ddp_cpu", f"data.dir={data_dir}",
        f"exp_manager.exp_dir={tmp_path}", "trainer.max_steps=4", "trainer.val_check_interval=2",
        "trainer.enable_progress_bar=false", "model.dataset.max_seq_length=64", "model.train_ds.batch_size=4",
        *extra,
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # Both ranks trained the same number of steps; only rank 0 wrote the model and reports.
    assert "rank 0/2: fit done at step 4" in result.stdout
    assert "rank 1/2: fit done at step 4" in result.stdout
    assert len(list(tmp_path.rglob("*.nemo"))) == 1
    assert len(list(tmp_path.rglob("metrics.json"))) == 1
    assert len({path.parent for path in tmp_path.rglob("events.out.tfevents.*")}) == 1
    assert len(list(tmp_path.rglob("nemo_log_globalrank-1_localrank-1.txt"))) == 1  # rank 1 ran, logged apart


def test_resume_if_exists_continues_the_interrupted_run(tiny_ner, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def run(max_steps):
        cfg = compose_config("train_ner", ["exp_manager.resume_if_exists=true", "exp_manager.version=resumable",
                                             "exp_manager.resume_ignore_no_checkpoint=true"])
        with open_dict(cfg):
            cfg.data.dir = str(tiny_ner)
        cfg = shrink(cfg, tmp_path, steps=max_steps)
        return train(cfg)

    first, second = run(4), run(8)
    assert first.log_dir == second.log_dir
    steps = []
    for events_file in sorted(second.log_dir.glob("events.out.tfevents.*")):
        events = EventAccumulator(str(events_file), size_guidance={"scalars": 0})
        events.Reload()
        if "train_loss" in events.Tags()["scalars"]:
            steps.append([e.step for e in events.Scalars("train_loss")])
    assert len(steps) == 2, "each run writes its own event file in the same run directory"
    # Lightning's logging step may repeat the checkpoint's last step, never restart at 0.
    assert min(steps[1]) >= max(steps[0]) > 0, "the second run continues where the first stopped"
    assert len(steps[0]) == len(steps[1]) == 4


def _resumable_tc_command(data_dir, exp_dir, version):
    # Four 2-step epochs, one validation (and checkpoint) at the end of each.
    return [sys.executable, "scripts/train_tc.py", f"data.dir={data_dir}", f"exp_manager.exp_dir={exp_dir}",
            f"exp_manager.version={version}", "exp_manager.resume_if_exists=true",
            "exp_manager.resume_ignore_no_checkpoint=true", "model.dataset.num_classes=3",
            "model.dataset.max_seq_length=64", "model.train_ds.batch_size=8", "model.validation_ds.batch_size=24",
            "model.test_ds.batch_size=24", "trainer.max_epochs=4", "trainer.limit_train_batches=2",
            "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1"]


def test_killed_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(tiny_tc3, tmp_path):
    import json
    import signal
    import time

    import torch

    from bertlab.predict import Predictor

    uninterrupted = subprocess.run(_resumable_tc_command(tiny_tc3, tmp_path, "whole"), cwd=REPO,
                                   capture_output=True, text=True, timeout=600)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]

    command = _resumable_tc_command(tiny_tc3, tmp_path, "killed")
    last = tmp_path / "text_classification" / "killed" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    killed_at = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert 0 < killed_at < 8, "killed after the first checkpoint, before the end"

    resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Restored all states from the checkpoint at {last}" in resumed.stdout + resumed.stderr

    whole_dir, killed_dir = (tmp_path / "text_classification" / v for v in ("whole", "killed"))
    for run_dir in (whole_dir, killed_dir):
        assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8
    assert json.loads((killed_dir / "metrics.json").read_text()) == json.loads(
        (whole_dir / "metrics.json").read_text())
    assert (killed_dir / "predictions.tsv").read_text() == (whole_dir / "predictions.tsv").read_text()
    (result,) = Predictor.load(killed_dir / "text_classification.nemo").classify(["Breast cancer in BRCA1 carriers."])
    assert result.label in (0, 1, 2)


def test_resume_without_a_checkpoint_stops_unless_asked_to_start_fresh(tiny_tc3, tmp_path):
    command = [arg for arg in _resumable_tc_command(tiny_tc3, tmp_path, "none")
               if not arg.startswith("exp_manager.resume_ignore_no_checkpoint")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "no checkpoint to resume" in line and "resume_ignore_no_checkpoint=true" in line
    assert not (tmp_path / "text_classification" / "none" / "checkpoints").exists()


def test_ctrl_c_keeps_a_usable_last_checkpoint(tiny_tc3, tmp_path):
    import signal
    import time

    import torch

    command = [arg.replace("trainer.max_epochs=4", "trainer.max_epochs=50")
               for arg in _resumable_tc_command(tiny_tc3, tmp_path, "interrupted")]
    checkpoints = tmp_path / "text_classification" / "interrupted" / "checkpoints"
    # Ctrl-C's default handling, whatever this test inherited: a job started with `&` from a
    # script ignores SIGINT, and so would the run (it then trained on to the end).
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not (checkpoints / "last.ckpt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(10)  # some steps past that checkpoint, even on a loaded machine
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=300)  # a loaded machine saves and tears down slowly
    assert process.returncode == 1, output[-3000:]
    (message,) = [line for line in output.splitlines() if "interrupted at step" in line]
    step = int(message.split("interrupted at step ")[1].split(";")[0])
    assert "exp_manager.resume_if_exists=true exp_manager.version=interrupted" in message
    state = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == step > 2 and state["optimizer_states"]
    assert not [p for p in checkpoints.iterdir() if p.name.endswith(".tmp")]


def test_resuming_from_a_planted_checkpoint_runs_no_code(tiny_tc3, tmp_path):
    import os
    import pickle

    import pytest

    from bertlab.io import DataError

    marker = tmp_path / "pwned"

    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    checkpoints = tmp_path / "text_classification" / "planted" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.ckpt").write_bytes(pickle.dumps({"state_dict": RunsCode()}))
    cfg = compose_config("train_tc", ["model.dataset.num_classes=3", "exp_manager.resume_if_exists=true",
                                      "exp_manager.version=planted"])
    with open_dict(cfg):
        cfg.data.dir = str(tiny_tc3)
    with pytest.raises(DataError, match="last.ckpt: refusing to load: the checkpoint holds more than tensors"):
        train(shrink(cfg, tmp_path))
    assert not marker.exists()
