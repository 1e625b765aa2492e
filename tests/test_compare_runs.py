"""Tests for comparing runs: fake exp_manager run directories written with TensorBoard's SummaryWriter."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO
from omegaconf import OmegaConf

from bertlab.compare import NoRunsError, NoSuchColumnError, compare, comparison_table, find_runs, load_runs, to_markdown
from bertlab.runs import flat_hparams

SCRIPT = REPO / "scripts" / "compare_runs.py"
STEPS, LOG_EVERY, SECONDS_PER_STEP, BATCH_SIZE = 100, 10, 0.5, 32
VAL_STEPS = (50, 100)
# Wall times relative to a run's start: train_loss from step 10 (5 s) to 100 (50 s), test 55 s, hparams 60 s.
TEST_SECONDS, HPARAMS_SECONDS = 55.0, 60.0
EXPECTED_WALL = HPARAMS_SECONDS - LOG_EVERY * SECONDS_PER_STEP
EXPECTED_STEPS_PER_S = 1 / SECONDS_PER_STEP

NER_A = {"lr": 1e-4, "val": (0.61, 0.58), "test": {"entity_f1": 0.6, "entity_precision": 0.55, "entity_recall": 0.66,
                                                    "entity_f1_Disease": 0.6}}
NER_B = {"lr": 5e-5, "val": (0.52, 0.57), "test": {"entity_f1": 0.56, "entity_precision": 0.5, "entity_recall": 0.64,
                                                   "entity_f1_Disease": 0.56}}
TC = {"lr": 1e-4, "val": (0.7, 0.72), "test": {"accuracy": 0.8, "macro_f1": 0.71, "micro_f1": 0.8, "f1_cancer": 0.75}}
VAL_METRIC = {"token_classification": "val_entity_f1", "text_classification": "val_macro_f1"}


def run_config(task: str, lr: float, seed: int = 42) -> dict:
    """A minimal composed config: what flat_hparams reads, plus the top-level keys a real one has."""
    return {
        "task": task, "seed": seed, "encoder": {"name": "minilm"},
        "trainer": {"max_epochs": 2, "precision": 32, "devices": 1, "num_nodes": 1, "accumulate_grad_batches": 1},
        "model": {"optim": {"name": "adamw", "lr": lr},
                  "train_ds": {"batch_size": BATCH_SIZE},
                  "dataset": {"max_seq_length": 128},
                  "language_model": {"pretrained_model_name": "sentence-transformers/all-MiniLM-L6-v2"}},
        "exp_manager": {"name": "ner" if task == "token_classification" else "tc"},
    }


def write_run(run_dir: Path, task: str, spec: dict, monkeypatch: pytest.MonkeyPatch, with_config: bool = True,
              hparams_run_name: str = ".", seed: int = 42) -> None:
    """Scalars as NeMo's TensorBoard logger writes them, test scalars and add_hparams as bertlab.train does."""
    from torch.utils.tensorboard import SummaryWriter

    cfg = OmegaConf.create(run_config(task, spec["lr"], seed))
    if with_config:
        run_dir.mkdir(parents=True)
        OmegaConf.save(cfg, run_dir / "config.yaml")
    start = time.time() - 30
    writer = SummaryWriter(log_dir=str(run_dir))
    for step in range(LOG_EVERY, STEPS + 1, LOG_EVERY):
        wall = start + step * SECONDS_PER_STEP
        for tag, value in {"train_loss": 1 / step, "lr": spec["lr"], "train_step_timing in s": SECONDS_PER_STEP,
                           "epoch": step // 50}.items():
            writer.add_scalar(tag, value, step, walltime=wall)
    for step, value in zip(VAL_STEPS, spec["val"]):
        writer.add_scalar("val_loss", 1 - value, step, walltime=start + step * SECONDS_PER_STEP)
        writer.add_scalar(VAL_METRIC[task], value, step, walltime=start + step * SECONDS_PER_STEP)
    test_scalars = {f"test_{name}": value for name, value in spec["test"].items()}
    for tag, value in test_scalars.items():
        writer.add_scalar(tag, value, STEPS, walltime=start + TEST_SECONDS)
    with monkeypatch.context() as patch:  # add_hparams takes no wall time: it stamps time.time()
        patch.setattr(time, "time", lambda: start + HPARAMS_SECONDS)
        writer.add_hparams(flat_hparams(cfg), {f"hparam/{k}": v for k, v in test_scalars.items()},
                           run_name=hparams_run_name)
    writer.close()


@pytest.fixture(scope="module")
def experiments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """experiments/ner/<two versions differing only in lr> and experiments/tc/<one version>."""
    root = tmp_path_factory.mktemp("compare") / "experiments"
    with pytest.MonkeyPatch.context() as monkeypatch:
        write_run(root / "ner" / "2026-11-22_02-20-04", "token_classification", NER_A, monkeypatch)
        write_run(root / "ner" / "2026-11-22_03-10-00", "token_classification", NER_B, monkeypatch)
        write_run(root / "tc" / "2026-11-22_04-00-00", "text_classification", TC, monkeypatch)
    return root


def test_two_runs_table_matches_what_was_written(experiments: Path) -> None:
    table = comparison_table(load_runs([experiments / "ner"])).set_index("run")

    assert list(table.index) == ["ner/2026-11-22_02-20-04", "ner/2026-11-22_03-10-00"]
    fixed = ["task", "encoder", "val metric", "best val", "final val", "test_entity_f1", "test_entity_precision",
             "test_entity_recall", "steps", "wall [s]", "steps/s", "samples/s", "errors"]
    assert [c for c in table.columns if c not in fixed] == ["model.optim.lr"]  # the only differing hparam
    assert table["errors"].isna().all()  # these runs wrote no errors.tsv
    for name, spec in zip(table.index, (NER_A, NER_B)):
        row = table.loc[name]
        assert (row["task"], row["encoder"], row["val metric"]) == ("token_classification", "minilm",
                                                                    "val_entity_f1")
        assert row["model.optim.lr"] == spec["lr"]
        assert row["best val"] == pytest.approx(max(spec["val"]))
        assert row["final val"] == pytest.approx(spec["val"][-1])
        for metric in ("entity_f1", "entity_precision", "entity_recall"):
            assert row[f"test_{metric}"] == pytest.approx(spec["test"][metric])
        assert row["steps"] == STEPS
        assert row["wall [s]"] == pytest.approx(EXPECTED_WALL)
        assert row["steps/s"] == pytest.approx(EXPECTED_STEPS_PER_S)
        assert row["samples/s"] == pytest.approx(EXPECTED_STEPS_PER_S * BATCH_SIZE)


def test_mixed_tasks_leave_other_tasks_cells_blank(experiments: Path) -> None:
    table = comparison_table(load_runs([experiments])).set_index("run")

    tc = table.loc["tc/2026-11-22_04-00-00"]
    assert (tc["task"], tc["val metric"]) == ("text_classification", "val_macro_f1")
    assert tc["best val"] == pytest.approx(0.72) and tc["final val"] == pytest.approx(0.72)
    assert tc["test_macro_f1"] == pytest.approx(0.71) and tc["test_accuracy"] == pytest.approx(0.8)
    assert pd.isna(tc["test_entity_f1"])
    assert pd.isna(table.loc["ner/2026-11-22_02-20-04", "test_macro_f1"])
    assert "model.optim.lr" in table.columns and "task" in table.columns
    markdown = to_markdown(table.reset_index())
    assert "nan" not in markdown.lower() and len(markdown.splitlines()) == 2 + len(table)


def test_metric_option_and_missing_scalar(experiments: Path) -> None:
    table = comparison_table(load_runs([experiments]), metric="val_entity_f1").set_index("run")

    assert table.loc["ner/2026-11-22_03-10-00", "best val"] == pytest.approx(0.57)
    assert pd.isna(table.loc["tc/2026-11-22_04-00-00", "best val"])  # the TC run never logged it
    assert table.loc["tc/2026-11-22_04-00-00", "val metric"] == "val_entity_f1"


def test_hparams_from_tensorboard_in_a_nested_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "ner" / "v1"
    write_run(run_dir, "token_classification", NER_A, monkeypatch, with_config=False, hparams_run_name="hp")

    assert find_runs([tmp_path]) == [run_dir.resolve()]
    (run,) = load_runs([tmp_path])
    assert (run.name, run.task, run.encoder) == ("ner/v1", "token_classification", "minilm")
    assert run.hparams["model.train_ds.batch_size"] == BATCH_SIZE and run.hparams["model.optim.lr"] == 1e-4
    assert run.test_value("test_entity_f1") == pytest.approx(0.6)


def test_compare_writes_csv_markdown_and_png(experiments: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = importlib.util.spec_from_file_location("compare_runs", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    assert script.main([str(experiments), "--csv", str(out / "runs.csv"), "--markdown", str(out / "runs.md"),
                        "--plot", str(out / "curves.png"), "--scalars", "train_loss,val_entity_f1,val_loss"]) == 0

    csv = pd.read_csv(out / "runs.csv")
    assert len(csv) == 3 and csv.loc[0, "test_entity_f1"] == pytest.approx(0.6)
    markdown = (out / "runs.md").read_text()
    assert markdown.startswith("Runs (3)") and "| run " in markdown and "ner/2026-11-22_03-10-00" in markdown
    assert "Seed groups (3;" in markdown
    assert len(pd.read_csv(out / "runs.groups.csv")) == 3
    png = (out / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_default_plot_goes_into_the_first_dir(experiments: Path) -> None:
    result = compare([experiments / "ner"])

    assert result.written == [experiments / "ner" / "comparison.png"]
    assert result.written[0].read_bytes().startswith(b"\x89PNG")


def test_no_runs(tmp_path: Path) -> None:
    with pytest.raises(NoRunsError, match="missing.*does not exist"):
        load_runs([tmp_path / "missing"])
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and str(tmp_path) in done.stderr and not done.stdout


def test_help() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--scalars" in done.stdout


def test_seed_groups_mean_std_filter_and_sort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bertlab.compare import group_table

    root = tmp_path / "experiments"
    for seed, val, test in ((1, 0.60, 0.58), (2, 0.64, 0.62), (3, 0.62, 0.60)):
        write_run(root / "ner" / f"s{seed}", "token_classification",
                  {**NER_A, "val": (val - 0.1, val), "test": {**NER_A["test"], "entity_f1": test}}, monkeypatch,
                  seed=seed)
    write_run(root / "ner" / "other-lr", "token_classification", NER_B, monkeypatch)
    write_run(root / "tc" / "v1", "text_classification", TC, monkeypatch)

    runs = load_runs([root])
    groups = group_table(runs).set_index("seeds")
    seeds = groups.loc["1,2,3"]
    assert seeds["n"] == 3 and seeds["model.optim.lr"] == 1e-4
    assert seeds["test_entity_f1 mean"] == pytest.approx(0.60) and seeds["test_entity_f1 std"] == pytest.approx(0.02)
    assert seeds["best val mean"] == pytest.approx(0.62) and seeds["best val std"] == pytest.approx(0.02)
    assert groups.loc["42"].shape[0] == 2 and groups.loc["42", "n"].tolist() == [1, 1]
    assert pd.isna(groups.loc["42", "test_entity_f1 std"]).all()
    # Best per task, by the mean dev score: the seed group for NER (0.62 > 0.57), the only TC group.
    assert sorted(groups.loc[groups["best"] == "*", "task"]) == ["text_classification", "token_classification"]
    assert groups.loc["1,2,3", "best"] == "*"

    only_ner = load_runs([root], experiment="n*")
    assert {run.experiment for run in only_ner} == {"ner"} and len(only_ner) == 4
    with pytest.raises(NoRunsError, match="matching 'xyz'"):
        load_runs([root], experiment="xyz")

    result = compare([root / "ner"], sort="test_entity_f1", ascending=True, plot_path=tmp_path / "p.png")
    assert list(result.table["test_entity_f1"]) == sorted(result.table["test_entity_f1"])
    assert list(result.groups["test_entity_f1 mean"]) == sorted(result.groups["test_entity_f1 mean"])
    assert "0.6000 ± 0.0200" in result.markdown and "| 1,2,3 " in result.markdown
    with pytest.raises(NoSuchColumnError, match="no column 'nope'"):
        compare([root / "ner"], sort="nope")
