"""CUDA runs: fp16 mixed precision on one GPU. Skipped on machines without a GPU."""

from __future__ import annotations

import json

import pytest
import torch
from test_train_ner import tiny_ner_run

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_ner_trains_on_gpu_with_fp16_mixed_precision(tiny_ner, tmp_path):
    run = tiny_ner_run(tiny_ner, tmp_path, ["trainer=gpu"])
    config = (run.log_dir / "config.yaml").read_text()
    assert "accelerator: gpu" in config and "precision: 16-mixed" in config
    assert json.loads((run.log_dir / "metrics.json").read_text())["entity"]["support"] > 0


def test_course_amp_level_maps_to_fp16_on_gpu(tiny_ner, tmp_path):
    run = tiny_ner_run(tiny_ner, tmp_path, ["trainer=gpu", "trainer.precision=32", "trainer.amp_level=O1"])
    assert run.nemo_path.is_file()
