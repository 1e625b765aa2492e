"""Text classification end to end on CPU: the real config, shrunk; assertions on artifacts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, compose_config, shrink, tc_config

from bertlab.config import ConfigError
from bertlab.io import DataError
from bertlab.train import train

CLASS_NAMES = ["cancer", "neurological disorder", "other"]


def scalar_tags(log_dir):
    """Every scalar series of a run directory (all its event files), by tag."""
    from bertlab.compare import load_run

    run = load_run(log_dir)
    return {tag: run.values(tag) for tag in run.scalars}


def tensorboard_hparams(log_dir) -> dict:
    """The hparams view's hyperparameters, as TensorBoard's hparams plugin reads them."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventMultiplexer().AddRunsFromDirectory(str(log_dir))
    events.Reload()
    hparams = {}
    for tags in events.PluginRunToTagToContent("hparams").values():
        for content in tags.values():
            start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
            hparams.update({k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
                            for k, v in start.hparams.items()})
    return hparams


def test_run_writes_metrics_with_class_names(tc_run):
    report = json.loads((tc_run.log_dir / "metrics.json").read_text())
    assert list(report["per_class"]) == CLASS_NAMES
    assert sum(c["support"] for c in report["per_class"].values()) == 24
    assert 0.0 <= report["macro_f1"] <= 1.0
    assert tc_run.metrics["macro_f1"] == pytest.approx(report["macro_f1"])
    predictions = (tc_run.log_dir / "predictions.tsv").read_text().splitlines()
    assert predictions[0] == "sentence\tgold\tpred" and len(predictions) == 25


def test_tensorboard_holds_train_loss_and_validation_f1(tc_run):
    scalars = scalar_tags(tc_run.log_dir)
    assert len(scalars["train_loss"]) == 6
    assert scalars["val_macro_f1"] and all(0.0 <= v <= 1.0 for v in scalars["val_macro_f1"])
    assert scalars["test_macro_f1"][-1] == pytest.approx(tc_run.metrics["macro_f1"], abs=1e-6)


def test_run_record_saved(tc_run):
    assert "num_classes: 3" in (tc_run.log_dir / "config.yaml").read_text()
    assert (tc_run.log_dir / "command.txt").is_file()
    assert (tc_run.log_dir / "git-info.log").is_file()


def test_hparams_view_holds_hyperparameters_and_final_metrics(tc_run):
    hparams = tensorboard_hparams(tc_run.log_dir)
    assert hparams["model.optim.lr"] == pytest.approx(1e-4)
    assert hparams["encoder.name"] == "minilm" and hparams["model.dataset.num_classes"] == 3
    assert scalar_tags(tc_run.log_dir)["hparam/test_macro_f1"] == [pytest.approx(tc_run.metrics["macro_f1"])]


def test_nemo_restores_offline_and_classifies(tc_run, tiny_tc3, no_network):
    from bertlab.predict import Predictor
    from bertlab.tasks import evaluate_text_classification

    predictor = Predictor.load(tc_run.nemo_path)
    assert predictor.class_names == CLASS_NAMES and predictor.max_seq_length == 64
    assert predictor.classify(["Glioblastoma is an aggressive brain tumour."])[0].class_name in CLASS_NAMES
    again = evaluate_text_classification(predictor, tiny_tc3 / "test_nemo_format.tsv", None)
    assert again["macro_f1"] == pytest.approx(tc_run.metrics["macro_f1"])


def test_missing_num_classes_stops_before_model(tmp_path, tiny_tc3):
    cfg = shrink(compose_config("train_tc"), tmp_path)
    with pytest.raises(ConfigError, match="model.dataset.num_classes"):
        train(cfg)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("key", "content", "message"), [
    ("train_ds", "a cancer abstract\t0\nanother abstract\t3\n", r"bad.tsv:2: .*3"),
    ("validation_ds", "sentence\tlabel\nsome abstract\t1\n", r"bad.tsv:1: header row .*strip_tsv_header"),
])
def test_bad_data_stops_before_the_model_with_file_and_line(key, content, message, tmp_path, tiny_tc3):
    bad = tmp_path / "bad.tsv"
    bad.write_text(content)
    cfg = tc_config(tiny_tc3, tmp_path / "exp", [f"model.{key}.file_path={bad}"])
    with pytest.raises(DataError, match=message):
        train(cfg)
    assert not (tmp_path / "exp").exists()


def test_missing_file_is_a_config_error(tmp_path, tiny_tc3):
    cfg = tc_config(tiny_tc3, tmp_path, [f"model.validation_ds.file_path={tmp_path}/nope.tsv"])
    with pytest.raises(ConfigError, match="model.validation_ds.file_path: file not found"):
        train(cfg)


def test_evaluate_script_reproduces_the_run(tc_run, tiny_tc3, tmp_path):
    out = tmp_path / "eval"
    result = subprocess.run([sys.executable, "scripts/evaluate_tc.py", str(tc_run.nemo_path),
                             str(tiny_tc3 / "test_nemo_format.tsv"), "--out-dir", str(out), "--batch-size", "12"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "neurological disorder" in result.stdout
    assert json.loads((out / "metrics.json").read_text())["macro_f1"] == pytest.approx(tc_run.metrics["macro_f1"])
    assert (out / "predictions.tsv").read_text() == (tc_run.log_dir / "predictions.tsv").read_text()
