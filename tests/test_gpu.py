"""CUDA runs: the default trainer picks the GPU with bf16 (or fp16) mixed precision; the
course's fp16 keys still work. Skipped on machines without a GPU."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from conftest import tiny_ner_run
from lightning.pytorch.callbacks import Callback

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_default_trainer_trains_ner_on_the_gpu_with_mixed_precision(tiny_ner, tmp_path):
    run = tiny_ner_run(tiny_ner, tmp_path)
    environment = yaml.safe_load((run.log_dir / "environment.yaml").read_text())
    expected = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    assert environment["trainer"]["accelerator"] == "gpu" and environment["trainer"]["precision"] == expected
    assert environment["device"]["gpu"] == torch.cuda.get_device_name()
    assert json.loads((run.log_dir / "metrics.json").read_text())["entity"]["support"] > 0


def test_fused_adamw_and_pinned_batches_on_gpu(tiny_ner, tmp_path):
    seen = {}

    class Probe(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.setdefault("optimizer", trainer.optimizers[0].defaults.get("fused"))
            seen.setdefault("device", batch[0].device.type)

    run = tiny_ner_run(tiny_ner, tmp_path, ["trainer=gpu", "trainer.precision=bf16-mixed"], callbacks=(Probe(),))
    assert run.nemo_path.is_file()
    assert seen == {"optimizer": True, "device": "cuda"}


def test_course_fp16_keys_on_gpu(tiny_ner, tmp_path):
    run = tiny_ner_run(tiny_ner, tmp_path, ["trainer.gpus=1", "trainer.precision=16", "trainer.amp_level=O1"])
    assert "precision: 16-mixed\n" in (run.log_dir / "environment.yaml").read_text()
    assert run.nemo_path.is_file()  # fp16 + clipping: AdamW not fused, no Lightning error


def test_a_compiled_encoder_trains_on_the_gpu(tiny_ner, tmp_path):
    run = tiny_ner_run(tiny_ner, tmp_path, ["model.compile=true"])
    assert "accelerator: gpu" in (run.log_dir / "environment.yaml").read_text()
    assert run.nemo_path.is_file() and run.metrics["entity_f1"] >= 0.0


def test_speed_benchmark_on_gpu(tmp_path):
    from bertlab.bench_speed import main

    out = tmp_path / "speed"
    assert main(["--encoder", "tiny-random", "--device", "cuda", "--epochs", "2", "--max-train", "64",
                 "--max-eval", "32", "--out-dir", str(out)]) == 0
    report = json.loads((out / "speed.json").read_text())
    assert report["spec"]["precision"] in ("bf16-mixed", "16-mixed")
    for result in report["results"]:
        assert result["memory_kind"] == "GPU" and result["gpu"] == torch.cuda.get_device_name()
        assert len(result["epoch_s"]) == 2 and 0.0 <= result["f1"] <= 1.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_unpadded_encoder_matches_the_padded_one_under_autocast(dtype):
    import copy

    from test_unpadded import padded_batch, tiny_bert

    from bertlab.unpadded import set_unpadded

    if dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 on this GPU")
    padded = tiny_bert().cuda().eval()
    unpadded = copy.deepcopy(padded)
    set_unpadded(unpadded)
    ids, mask = (t.cuda() for t in padded_batch())
    real = mask.bool()
    with torch.autocast("cuda", dtype=dtype):
        expected = padded(input_ids=ids, attention_mask=mask).last_hidden_state[real].float()
        actual = unpadded(input_ids=ids, attention_mask=mask).last_hidden_state[real].float()
    torch.testing.assert_close(actual, expected, atol=0.05, rtol=0.05)
    assert torch.isfinite(actual).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_the_first_token_layer_matches_the_full_one_under_autocast(dtype):
    import copy

    from test_unpadded import padded_batch, tiny_bert

    from bertlab.unpadded import set_first_token_only

    if dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 on this GPU")
    full = tiny_bert().cuda().train()  # dropout 0: train mode takes the training kernels
    first_only = copy.deepcopy(full)
    set_first_token_only(first_only)
    ids, mask = (t.cuda() for t in padded_batch())
    with torch.autocast("cuda", dtype=dtype):
        expected = full(input_ids=ids, attention_mask=mask).last_hidden_state[:, :1].float()
        actual = first_only(input_ids=ids, attention_mask=mask).last_hidden_state.float()
    torch.testing.assert_close(actual, expected, atol=0.05, rtol=0.05)
    assert torch.isfinite(actual).all()
