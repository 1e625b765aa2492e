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
        cfg = compose_config("train_ner", ["exp_manager.resume_if_exists=true", "exp_manager.version=resumable"])
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
