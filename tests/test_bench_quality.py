"""The quality benchmark end to end on a slice of the corpus: recipes chosen on dev, seeds, resume."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from conftest import NCBI_DIR

from bertlab.bench_quality import choose_on_dev, load_grid, main
from bertlab.config import ConfigError

GRID = """
target: 0.99
margin: 0.01
bertlab:
  head: [trainer.max_epochs=1, model.dataset.max_seq_length=64, model.train_ds.batch_size=8]
  head_tail: [trainer.max_epochs=1, model.dataset.max_seq_length=64, model.train_ds.batch_size=8,
              model.dataset.long_text=head_tail]
hf:
  lr_1e-4: {lr: 1.0e-4}
hf_defaults: {epochs: 1, batch_size: 8, max_seq_length: 64, warmup_ratio: 0.1, weight_decay: 0.01}
"""


def test_recipes_are_chosen_on_dev_then_run_with_every_seed(tmp_path):
    grid, out = tmp_path / "grid.yaml", tmp_path / "quality"
    grid.write_text(GRID)
    args = ["--task", "tc", "--grid", str(grid), "--seeds", "1,2", "--device", "cpu", "--max-train", "24",
            "--max-eval", "12", "--corpus", str(NCBI_DIR), "--out-dir", str(out)]
    assert main(args) == 1  # a target of 0.99 is not met
    report = json.loads((out / "quality.json").read_text())
    selection = {(r["pipeline"], r["recipe"]): r for r in report["selection"]}
    assert set(selection) == {("bertlab", "head"), ("bertlab", "head_tail"), ("hf", "lr_1e-4")}
    for pipeline in ("bertlab", "hf"):
        tried = [r for (p, _), r in selection.items() if p == pipeline]
        final = report["final"][pipeline]
        assert final["recipe"] == max(tried, key=lambda r: r["dev_f1"])["recipe"]
        assert final["seeds"] == [1, 2] and len(final["test"]) == 2
        assert final["mean"] == pytest.approx(sum(final["test"]) / 2)
        assert final["test"][0] == selection[(pipeline, final["recipe"])]["f1"]  # seed 1 is the selection run
        assert all(0 <= score <= 1 for score in final["test"])
    assert report["verdict"]["meets_target"] is False
    final = report["final"]
    assert report["verdict"]["lead"] == pytest.approx(final["bertlab"]["mean"] - final["hf"]["mean"])
    variances = [statistics.variance(final[pipeline]["test"]) / 2 for pipeline in ("bertlab", "hf")]
    assert report["verdict"]["lead_se"] == pytest.approx(math.sqrt(sum(variances)))
    markdown = (out / "quality.md").read_text()
    assert f"standard error {100 * report['verdict']['lead_se']:.1f} over the seeds" in markdown
    assert "(chosen)" in markdown and "mean +- std" in markdown and "FAIL" in markdown
    # The paired bootstrap rescores the stored test predictions (the report checks they give each
    # run's score): on the whole test slice its lead is the verdict's.
    boot = report["verdict"]["bootstrap"]
    assert boot["lead"] == pytest.approx(report["verdict"]["lead"]) and boot["items"] == 12
    assert boot["interval"][0] <= boot["lead"] <= boot["interval"][1] and 0 <= boot["reaches_margin"] <= 1
    assert "paired bootstrap over the 12 test items" in markdown
    assert all("test_predictions" not in run for run in report["selection"])
    stored = json.loads((out / "hf-lr_1e-4-seed2.json").read_text())
    assert len(stored["test_predictions"]) == 12 and set(stored["test_predictions"]) <= {0, 1, 2}
    assert "Recipes chosen on dev (seed 1;" in markdown
    # A second call resumes: every run's result is there, nothing trains again.
    logs = {p: p.stat().st_mtime_ns for p in out.glob("*.log")}
    assert len(logs) == 5
    assert main(args) == 1
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.log")} == logs
    assert json.loads((out / "quality.json").read_text())["final"] == report["final"]
    # Chosen on the mean dev over both seeds instead: only the loser's second seed is new.
    assert main([*args, "--select-seeds", "2"]) == 1
    assert len(list(out.glob("*.log"))) == 6
    report = json.loads((out / "quality.json").read_text())
    assert report["verdict"]["bootstrap"]["lead"] == pytest.approx(report["verdict"]["lead"])
    assert report["select_seeds"] == [1, 2]
    runs = {(r["recipe"], r["seed"]): r for r in report["selection"] if r["pipeline"] == "bertlab"}
    assert set(runs) == {("head", 1), ("head", 2), ("head_tail", 1), ("head_tail", 2)}
    dev_means = {recipe: (runs[recipe, 1]["dev_f1"] + runs[recipe, 2]["dev_f1"]) / 2
                 for recipe in ("head", "head_tail")}
    final = report["final"]["bertlab"]
    assert final["recipe"] == max(dev_means, key=dev_means.get)  # dict order is grid order: a tie goes to head
    assert final["test"] == [runs[final["recipe"], seed]["f1"] for seed in (1, 2)]
    assert final["dev_mean"] == pytest.approx(dev_means[final["recipe"]])
    markdown = (out / "quality.md").read_text()
    assert "| bertlab | head_tail" in markdown and "Recipes chosen on dev (the mean over seeds 1, 2;" in markdown
    # Predictions that do not give the stored score are an error, not a bootstrap of other runs.
    stored = out / "hf-lr_1e-4-seed2.json"
    result = json.loads(stored.read_text())
    stored.write_text(json.dumps({**result, "f1": result["f1"] + 0.5}))
    with pytest.raises(RuntimeError, match="hf-lr_1e-4-seed2: its test predictions score"):
        main([*args, "--select-seeds", "2"])
    # A result stored before predictions were kept: the report says so and still gives the rest.
    stored.write_text(json.dumps({k: v for k, v in result.items() if k != "test_predictions"}))
    assert main([*args, "--select-seeds", "2"]) == 1
    assert json.loads((out / "quality.json").read_text())["verdict"]["bootstrap"] == {
        "missing": ["hf-lr_1e-4-seed2"]}
    assert "not run, no stored test predictions in hf-lr_1e-4-seed2" in (out / "quality.md").read_text()


@pytest.mark.parametrize("select_seeds", ["0", "3"])
def test_select_seeds_must_lie_within_the_seeds(select_seeds):
    with pytest.raises(ConfigError, match="--select-seeds must lie between 1 and the number of --seeds \\(2\\)"):
        main(["--task", "tc", "--seeds", "1,2", "--select-seeds", select_seeds])


@pytest.mark.parametrize(("text", "message"), [
    ("target: 0.9\n", "missing key 'margin'"),
    ("target: 0.9\nmargin: 0.01\nbertlab: {}\nhf: {a: {}}\nhf_defaults: {}\n", "bertlab needs at least one"),
    ("target: 0.9\nmargin: 0.01\nbertlab: {a: []}\nhf: {a: {lr: 1.0e-4, class_weight: balanced}}\nhf_defaults: {}\n",
     "unknown Hugging Face setting hf.a.class_weight "),
    ("target: 0.9\nmargin: 0.01\nbertlab: {a: []}\nhf: {a: {}}\nhf_defaults: {epoch: 5}\n",
     "unknown Hugging Face setting hf_defaults.epoch "),
])
def test_bad_grid_is_a_config_error(text, message, tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_grid(path)


def test_candidates_option_keeps_the_named_recipes(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    grid = load_grid(path, candidates="head_tail,lr_1e-4")
    assert list(grid["bertlab"]) == ["head_tail"] and list(grid["hf"]) == ["lr_1e-4"]
    with pytest.raises(ConfigError, match="hf needs at least one"):
        load_grid(path, candidates="head")
    assert list(load_grid(path, ("bertlab",), candidates="head")["bertlab"]) == ["head"]


def test_candidates_option_names_a_pipeline_where_both_grids_share_a_name(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(GRID.replace("bertlab:\n", "bertlab:\n  lr_1e-4: [model.optim.lr=1e-4]\n", 1))
    both = load_grid(path, candidates="head,lr_1e-4")
    assert list(both["bertlab"]) == ["lr_1e-4", "head"] and list(both["hf"]) == ["lr_1e-4"]
    one = load_grid(path, candidates="bertlab:head,hf:lr_1e-4")
    assert list(one["bertlab"]) == ["head"] and list(one["hf"]) == ["lr_1e-4"]
    with pytest.raises(ConfigError, match="no candidate recipe hf:head, head_tial "):
        load_grid(path, candidates="hf:head,head_tial,lr_1e-4")
    with pytest.raises(ConfigError, match="the pipeline before ':'"):
        load_grid(path, candidates="nemo:head")


@pytest.mark.parametrize("task", ["tc", "ner"])
def test_shipped_grids_load_and_name_real_settings(task):
    from conftest import REPO, compose_config

    grid = load_grid(REPO / "conf" / "quality" / f"{task}.yaml")
    for overrides in grid["bertlab"].values():  # every candidate composes with the real config
        compose_config("train_tc" if task == "tc" else "train_ner", ["model.dataset.num_classes=3"] * (task == "tc")
                       + list(overrides))
    assert set(grid["hf_defaults"]) == {"epochs", "batch_size", "max_seq_length", "warmup_ratio", "weight_decay"}


def test_a_dev_tie_goes_to_the_candidate_listed_first():
    tried = [{"recipe": "a", "dev_f1": 0.90, "f1": 0.99}, {"recipe": "b", "dev_f1": 0.95, "f1": 0.80},
             {"recipe": "c", "dev_f1": 0.95, "f1": 0.99}]
    assert choose_on_dev(tried)["recipe"] == "b"
    assert choose_on_dev(tried[::-1])["recipe"] == "c"


def test_hugging_face_ner_is_scored_on_test_when_dev_and_test_differ_in_size(tmp_path):
    """NCBI's dev and test splits differ in size (923 and 940 sentences); the Trainer's dev
    scorer must not be applied to the test predictions. The data copy is rewritten in place,
    as a resumed benchmark does."""
    from bertlab.bench_speed import prepare_data, prepare_encoder, run_pipeline

    data = tmp_path / "data"
    prepare_data("ner", NCBI_DIR, data, 16, 12)
    counts = prepare_data("ner", NCBI_DIR, data, 16, 12)  # resumed: the same copy again
    for name in ("text_dev.txt", "labels_dev.txt", "docs_dev.txt"):
        (data / name).write_text("".join((data / name).read_text().splitlines(keepends=True)[:8]))
    spec = {"task": "ner", "device": "cpu", "precision": "32", "encoder": prepare_encoder("tiny-random", tmp_path, 0),
            "encoder_name": "tiny-random", "data_dir": str(data), "counts": {**counts, "dev": 8}, "seed": 1,
            "hf": {"epochs": 1, "batch_size": 8, "max_seq_length": 64, "warmup_ratio": 0.1, "weight_decay": 0.01,
                   "lr": 1e-4, "propagate_abbreviations": True}}  # with bertlab's abbreviation step
    result = run_pipeline("hf", spec, tmp_path)
    assert "error" not in result, result.get("error")
    assert 0 <= result["f1"] <= 1 and 0 <= result["dev_f1"] <= 1


def test_hugging_face_class_weights_are_nemos_balanced_weights():
    """``class_weights: balanced`` weighs each class by n / (classes x count), NeMo's
    weighted_loss weights; padding labels count for nothing."""
    import torch

    from bertlab.bench_speed_worker import weighted_cross_entropy

    loss = weighted_cross_entropy([0, 0, 0, 1, -100], num_labels=3)  # class 2 absent: weight 1
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    labels = torch.tensor([0, 1, 2, -100])
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=torch.tensor([4 / 6, 2.0, 1.0]))
    assert loss({"logits": logits}, labels).item() == pytest.approx(expected.item())
    assert expected.item() != pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())


def test_hugging_face_trains_with_class_weights(tmp_path):
    from bertlab.bench_speed import prepare_data, prepare_encoder, run_pipeline

    counts = prepare_data("tc", NCBI_DIR, tmp_path / "data", 24, 12)
    spec = {"task": "tc", "device": "cpu", "precision": "32", "encoder": prepare_encoder("tiny-random", tmp_path, 0),
            "encoder_name": "tiny-random", "data_dir": str(tmp_path / "data"), "counts": counts, "seed": 1,
            "hf": {"epochs": 1, "batch_size": 8, "max_seq_length": 64, "warmup_ratio": 0.1, "weight_decay": 0.01,
                   "lr": 1e-4, "class_weights": "balanced"}}
    result = run_pipeline("hf", spec, tmp_path)
    assert "error" not in result, result.get("error")
    assert 0 <= result["f1"] <= 1 and 0 <= result["dev_f1"] <= 1
    assert "class-weighted cross-entropy, weights [" in (tmp_path / "hf.log").read_text()
    bad = run_pipeline("hf", {**spec, "hf": {**spec["hf"], "class_weights": "inverse"}}, tmp_path, name="bad")
    assert "class_weights: 'balanced' or null, got 'inverse'" in bad["error"]


def test_hugging_face_runs_reproduce_and_their_seed_sets_the_head(tmp_path):
    """Two processes with one seed train the same weights; another seed draws another classifier
    head (it was drawn from a generator each process seeds at random)."""
    from safetensors.torch import load_file

    from bertlab.bench_speed import prepare_data, prepare_encoder, run_pipeline

    counts = prepare_data("tc", NCBI_DIR, tmp_path / "data", 16, 8)
    spec = {"task": "tc", "device": "cpu", "precision": "32", "encoder": prepare_encoder("tiny-random", tmp_path, 0),
            "encoder_name": "tiny-random", "data_dir": str(tmp_path / "data"), "counts": counts,
            "hf": {"epochs": 1, "batch_size": 8, "max_seq_length": 32, "warmup_ratio": 0.1, "weight_decay": 0.01,
                   "lr": 1e-4}}
    weights = {}
    for name, seed in (("first", 1), ("again", 1), ("other", 2)):
        result = run_pipeline("hf", {**spec, "seed": seed}, tmp_path, name=name)
        assert "error" not in result, result.get("error")
        (checkpoint,) = (tmp_path / name).glob("checkpoint-*/model.safetensors")  # the best epoch's
        weights[name] = load_file(checkpoint)
    assert all(weights["first"][key].equal(weights["again"][key]) for key in weights["first"])
    assert not weights["first"]["classifier.weight"].equal(weights["other"]["classifier.weight"])
