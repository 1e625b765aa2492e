"""Disease NER end to end on CPU: the real config, shrunk; assertions on artifacts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, compose_config, shrink
from omegaconf import open_dict
from test_train_tc import scalar_tags

from bertlab.data.iob import read_conll, read_nemo
from bertlab.train import train


@pytest.fixture(scope="module")
def ner_run(tiny_ner, tmp_path_factory):
    cfg = compose_config("train_ner")
    with open_dict(cfg):
        cfg.data.dir = str(tiny_ner)
    return train(shrink(cfg, tmp_path_factory.mktemp("exp"), steps=8))


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
    from bertlab.restore import restore_model

    model = restore_model(ner_run.nemo_path)
    tags = model.predict_tags([["Familial", "breast", "cancer", "is", "inherited", "."]])
    assert len(tags[0]) == 6 and set(tags[0]) <= {"O", "B-Disease", "I-Disease"}
    assert dict(model.cfg.label_ids) == {"O": 0, "B-Disease": 1, "I-Disease": 2}


def test_evaluate_script_reproduces_the_run(ner_run, tiny_ner, tmp_path):
    out = tmp_path / "eval"
    result = subprocess.run(
        [sys.executable, "scripts/evaluate_ner.py", str(ner_run.nemo_path), "--text",
         str(tiny_ner / "text_test.txt"), "--labels", str(tiny_ner / "labels_test.txt"), "--out-dir", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Disease" in result.stdout
    assert json.loads((out / "metrics.json").read_text())["entity"]["f1"] == pytest.approx(ner_run.metrics["entity_f1"])
    assert (out / "predictions.conll").read_text() == (ner_run.log_dir / "predictions.conll").read_text()
