"""Text classification end to end on CPU: the real config, shrunk; assertions on artifacts."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from conftest import REPO, archive_member, classes_of_test_pass, compose_config, repack_archive, shrink, tc_config

from bertlab.config import ConfigError
from bertlab.io import DataError
from bertlab.train import train

CLASS_NAMES = ["cancer", "neurological disorder", "other"]


def scalar_tags(log_dir):
    """Every scalar series of a run directory (all its event files), by tag."""
    from bertlab.compare import load_run

    run = load_run(log_dir)
    return {tag: run.values(tag) for tag in run.scalars}


def tensorboard_hparams(log_dir) -> tuple[dict, list[str]]:
    """The hparams view's hyperparameters and metric columns, as TensorBoard's hparams plugin reads them."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventMultiplexer().AddRunsFromDirectory(str(log_dir))
    events.Reload()
    hparams, metrics = {}, []
    for tags in events.PluginRunToTagToContent("hparams").values():
        for content in tags.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            hparams.update({k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
                            for k, v in data.session_start_info.hparams.items()})
            metrics.extend(info.name.tag for info in data.experiment.metric_infos)
    return hparams, metrics


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
    hparams, metrics = tensorboard_hparams(tc_run.log_dir)
    assert hparams["model.optim.lr"] == pytest.approx(2e-4)
    assert hparams["encoder.name"] == "minilm" and hparams["model.dataset.num_classes"] == 3
    # The metric columns are the test scalars themselves: no one-point hparam/* scalar cards.
    assert "test_macro_f1" in metrics and "test_accuracy" in metrics
    scalars = scalar_tags(tc_run.log_dir)
    assert scalars["test_macro_f1"] == [pytest.approx(tc_run.metrics["macro_f1"])]
    assert not [tag for tag in scalars if tag.startswith("hparam/")]


def test_nemo_restores_offline_and_classifies(tc_run, tiny_tc3, no_network):
    from bertlab.predict import Predictor
    from bertlab.tasks import evaluate_text_classification

    predictor = Predictor.load(tc_run.nemo_path)
    assert predictor.class_names == CLASS_NAMES and predictor.max_seq_length == 64
    assert predictor.classify(["Glioblastoma is an aggressive brain tumour."])[0].class_name in CLASS_NAMES
    again = evaluate_text_classification(predictor, tiny_tc3 / "test_nemo_format.tsv", None)
    assert again["macro_f1"] == pytest.approx(tc_run.metrics["macro_f1"])


def test_mean_pooling_trains_saves_and_ignores_padding(tiny_tc3, tmp_path):
    """``model.classifier_head.pooling=mean``: the run's test pass, the restored model and a
    text padded into a wider batch all give the same classes and logits."""
    import torch

    from bertlab.data.tsv import read_labeled_tsv
    from bertlab.predict import Predictor
    from bertlab.unpadded import FirstTokenBertLayer

    run = train(tc_config(tiny_tc3, tmp_path, ["model.classifier_head.pooling=mean"]))
    predictor = Predictor.load(run.nemo_path, device="cpu")
    assert type(predictor.model.bert_model.encoder.layer[-1]) is not FirstTokenBertLayer  # every position is read
    texts = [text for text, _ in read_labeled_tsv(tiny_tc3 / "test_nemo_format.tsv").rows]
    test_pass = classes_of_test_pass(run.log_dir)
    assert [result.class_name for result in predictor.classify(texts)] == test_pass

    model, tokenizer = predictor.model, predictor.model.tokenizer
    ids = [tokenizer.cls_id, *tokenizer.text_to_ids("Huntington disease is a neurological disorder."), tokenizer.sep_id]
    alone = torch.tensor([ids])
    padded = torch.tensor([ids + [tokenizer.pad_id] * 20])
    mask = (padded != tokenizer.pad_id).long()

    def logits(input_ids, attention_mask):
        return model(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids), attention_mask=attention_mask)

    with torch.inference_mode():
        logits_alone, logits_padded = logits(alone, torch.ones_like(alone)), logits(padded, mask)
        model.cfg.classifier_head.pooling = "cls"  # the same weights read from [CLS] give other logits
        logits_cls = logits(alone, torch.ones_like(alone))
    assert torch.allclose(logits_alone, logits_padded, atol=1e-5)
    assert not torch.allclose(logits_alone, logits_cls, atol=1e-3)


def test_pooler_pooling_starts_from_the_pretrained_pooler_and_restores(tiny_tc3, tmp_path):
    """``model.classifier_head.pooling=pooler``: [CLS] through the encoder's pretrained dense +
    tanh (Hugging Face's reading), the last layer computing [CLS] alone; the restored model
    classifies as the run's test pass did."""
    import torch
    from safetensors.torch import load_file

    from bertlab.data.tsv import read_labeled_tsv
    from bertlab.encoders import embedded_encoder_path
    from bertlab.predict import Predictor
    from bertlab.unpadded import FirstTokenBertLayer

    run = train(tc_config(tiny_tc3, tmp_path, ["model.classifier_head.pooling=pooler"]))
    predictor = Predictor.load(run.nemo_path, device="cpu")
    encoder = predictor.model.bert_model
    assert type(encoder.encoder.layer[-1]) is FirstTokenBertLayer
    pretrained = load_file(Path(embedded_encoder_path()) / "model.safetensors")["pooler.dense.weight"]
    trained = encoder.pooler.dense.weight.detach()
    assert not torch.equal(trained, pretrained)  # it trains ...
    assert torch.allclose(trained, pretrained, atol=0.01)  # ... from the pretrained weights, a few steps away
    texts = [text for text, _ in read_labeled_tsv(tiny_tc3 / "test_nemo_format.tsv").rows]
    test_pass = classes_of_test_pass(run.log_dir)
    assert [result.class_name for result in predictor.classify(texts)] == test_pass


def test_weighted_loss_weighs_classes_by_their_training_counts(tiny_tc3, tmp_path):
    """``model.dataset.class_balancing=weighted_loss``: NeMo's weights, n / (classes x count)
    over the training texts, in the loss (tests/test_tracking.py checks that the data
    directory stays untouched, which NeMo's own path would not)."""
    from collections import Counter

    from bertlab.data.tsv import read_labeled_tsv

    run = train(tc_config(tiny_tc3, tmp_path, ["model.dataset.class_balancing=weighted_loss"]))
    counts = Counter(label for _, label in read_labeled_tsv(tiny_tc3 / "train_nemo_format.tsv").rows)
    total = sum(counts.values())
    weights = [round(total / (len(counts) * counts[label]), 4) if counts[label] else 1.0 for label in range(3)]
    assert len(set(weights)) > 1  # the tiny split is unbalanced, so the test can tell
    assert f"class-weighted loss, weights {weights}" in (run.log_dir / "train.log").read_text()
    assert 0 <= json.loads((run.log_dir / "metrics.json").read_text())["macro_f1"] <= 1


def test_pooling_is_cls_pooler_or_mean():
    from bertlab.config import check_types

    with pytest.raises(ConfigError,
                       match="model.classifier_head.pooling: expected one of cls, pooler, mean, got 'max'"):
        check_types(compose_config("train_tc", ["model.dataset.num_classes=3", "model.classifier_head.pooling=max"]))


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


# --- untrusted models ----------------------------------------------------------------------------


def test_archive_naming_another_class_is_refused_before_import(tc_run, tmp_path):
    from bertlab.restore import restore_model

    config = archive_member(tc_run.nemo_path, "model_config.yaml").decode()
    config = config.replace("bertlab.models.TextClassifier", "this.Zen")
    evil = repack_archive(tc_run.nemo_path, tmp_path / "evil.nemo", replace={"model_config.yaml": config.encode()})
    assert "this" not in sys.modules
    with pytest.raises(DataError, match=r"evil\.nemo: not a bertlab model: its class is 'this.Zen'; refusing"):
        restore_model(evil)
    assert "this" not in sys.modules


def test_archive_whose_weights_run_code_is_refused(tc_run, tmp_path):
    from bertlab.restore import restore_model

    marker = tmp_path / "pwned"

    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    weights = pickle.dumps({"bert_model.weight": RunsCode()})
    evil = repack_archive(tc_run.nemo_path, tmp_path / "evil.nemo", replace={"model_weights.ckpt": weights})
    with pytest.raises(DataError, match=r"evil\.nemo: refusing to load: its weights hold more than tensors"):
        restore_model(evil)
    assert not marker.exists()


def test_unsafe_members_are_neither_extracted_nor_read(tc_run, tmp_path):
    from bertlab.restore import restore_model

    name = f"escaped-{os.getpid()}-{tmp_path.name}"
    outside = [Path(tempfile.gettempdir()) / name, Path(tempfile.gettempdir()).parent / name]
    decoy = archive_member(tc_run.nemo_path, "model_config.yaml").replace(b"bertlab.models.TextClassifier", b"this.Zen")
    link = tarfile.TarInfo("./escape-link")
    link.type, link.linkname = tarfile.SYMTYPE, str(outside[0])
    archive = repack_archive(tc_run.nemo_path, tmp_path / "traversal.nemo", extra=[
        (tarfile.TarInfo(f"../{name}"), b"outside"), (tarfile.TarInfo(f"/{name}"), b"absolute"),
        (tarfile.TarInfo("../model_config.yaml"), decoy), (link, b"")])
    model = restore_model(archive)  # the real config drives the import; the decoy is skipped
    assert type(model).__name__ == "TextClassifier"
    assert not any(path.exists() for path in outside) and not Path(f"/{name}").exists()


@pytest.mark.parametrize(("content", "message"), [
    (b"", r"not a NeMo model: not a \.nemo \(tar\) archive"),
    (b"certainly not a tar archive" * 50, r"not a NeMo model: not a \.nemo \(tar\) archive"),
])
def test_not_a_model_is_a_clear_error(content, message, tmp_path):
    from bertlab.restore import restore_model

    path = tmp_path / "model.nemo"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"model.nemo: {message}"):
        restore_model(path)


def test_archive_without_a_config_is_a_clear_error(tmp_path):
    from bertlab.restore import restore_model

    path = tmp_path / "empty.nemo"
    with tarfile.open(path, "w:gz") as archive:
        member = tarfile.TarInfo("./model_weights.ckpt")
        archive.addfile(member, io.BytesIO(b""))
    with pytest.raises(DataError, match="empty.nemo: not a NeMo model: the archive has no model_config.yaml"):
        restore_model(path)


def test_evaluation_inputs_are_checked_before_the_model_loads(tc_run, ner_run, tmp_path):
    def evaluate(script, *args):
        return subprocess.run([sys.executable, f"scripts/{script}", *map(str, args)], cwd=REPO, capture_output=True,
                              text=True, timeout=120)

    wrong_task = evaluate("evaluate_tc.py", ner_run.nemo_path, tc_run.log_dir / "predictions.tsv")
    assert wrong_task.returncode == 2
    assert wrong_task.stderr.splitlines()[-1].endswith("is a token_classification model; this script evaluates "
                                                       "text_classification models")
    # The run's own predictions.tsv as the input, its directory as --out-dir: refused, left as it was.
    predictions = tc_run.log_dir / "predictions.tsv"
    before = predictions.read_bytes()
    clash = evaluate("evaluate_tc.py", tc_run.nemo_path, predictions, "--out-dir", tc_run.log_dir)
    assert clash.returncode == 2 and "output would overwrite input" in clash.stderr
    assert predictions.read_bytes() == before
    conll = ner_run.log_dir / "predictions.conll"
    clash = evaluate("evaluate_ner.py", ner_run.nemo_path, "--conll", conll, "--out-dir", ner_run.log_dir)
    assert clash.returncode == 2 and "output would overwrite input" in clash.stderr
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    assert evaluate("evaluate_tc.py", tc_run.nemo_path, empty).returncode == 2
    assert evaluate("evaluate_tc.py", tc_run.nemo_path, empty, "--batch-size", "0").returncode == 2
