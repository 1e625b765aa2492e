"""The speed benchmark end to end on a random 2-layer encoder: three pipelines, each in its
own process, for a few steps on a slice of the real corpus."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import NCBI_DIR, REPO, compose_config

from bertlab.bench_speed import PIPELINES, main
from bertlab.config import ConfigError


def bench(tmp_path, *args):
    out = tmp_path / "speed"
    code = main(["--encoder", "tiny-random", "--device", "cpu", "--epochs", "2", "--max-train", "48",
                 "--max-eval", "16", "--batch-size", "16", "--corpus", str(NCBI_DIR), "--out-dir", str(out), *args])
    return code, json.loads((out / "speed.json").read_text()), (out / "speed.md").read_text()


def _check(report, table, f1_name):
    assert [r["pipeline"] for r in report["results"]] == list(PIPELINES)
    for result in report["results"]:
        assert "error" not in result, result
        assert result["sentences_per_s"] > 0 and result["fit_s"] > 0 and result["sentences_per_cpu_s"] > 0
        assert len(result["epoch_s"]) == 2 and result["later_epoch_s"] == result["epoch_s"][1]
        assert 0 < result["first_step_s"] < result["fit_s"] + 300
        assert result["memory_kind"] == "RSS" and result["peak_memory_mb"] > 100
        assert result["f1_name"] == f1_name and 0.0 <= result["f1"] <= 1.0
    assert report["spec"]["counts"]["train"] == 48
    assert table.splitlines()[2].startswith("| pipeline | fit s | fit sent/s | vs nemo | vs hf | sent/CPU-s |")
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 2 + len(PIPELINES)


def test_ner_benchmark_runs_all_three_pipelines(tmp_path):
    code, report, table = bench(tmp_path)
    assert code == 0
    _check(report, table, "test entity F1")


@pytest.mark.slow
def test_tc_benchmark_runs_all_three_pipelines(tmp_path):
    code, report, table = bench(tmp_path, "--task", "tc")
    assert code == 0
    _check(report, table, "test macro F1")


def test_a_variant_trains_bertlab_with_its_overrides(tmp_path):
    code, report, table = bench(tmp_path, "--pipelines", "bertlab", "--variant", "padded", "model.unpadded=false",
                                "--variant", "checkpoints", "exp_manager.create_checkpoint_callback=true")
    assert code == 0
    assert [r["pipeline"] for r in report["results"]] == ["bertlab", "bertlab-padded", "bertlab-checkpoints"]
    assert report["results"][1]["overrides"] == ["model.unpadded=false"] and report["results"][1]["sentences_per_s"] > 0
    assert "| bertlab-padded | " in table
    records = {path.parts[-4]: path.read_text() for path in (tmp_path / "speed").glob("bertlab*/*/*/config.yaml")}
    assert "unpadded: false" in records["bertlab-padded"] and "unpadded: null" in records["bertlab"]
    assert "warmup_ratio: 0.1" in records["bertlab"]  # the benchmark's schedule, not the NER default's
    # No checkpoint writes while timing (as stock NeMo), unless a variant asks for them.
    runs = (tmp_path / "speed").glob("bertlab*/")
    written = {run.name: bool(list(run.glob("*/*/checkpoints/*.ckpt"))) for run in runs}
    assert written == {"bertlab": False, "bertlab-padded": False, "bertlab-checkpoints": True}, written


@pytest.mark.parametrize(("args", "message"), [
    (["--pipelines", "nemo,keras"], "--pipelines"),
    (["--precision", "fp8"], "--precision"),
    (["--variant", "unpadded"], "--variant unpadded: expected a name and KEY=VALUE overrides"),
    (["--variant", "model.unpadded=true"], "expected a name"),
])
def test_bad_options_are_config_errors(args, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        main(["--device", "cpu", "--corpus", str(NCBI_DIR), "--out-dir", str(tmp_path), *args])


def test_stock_nemo_and_hugging_face_get_the_benchmarks_warmup():
    """One schedule for all three, whatever the NER default's warmup (none, chosen on dev)."""
    from bertlab.bench_speed import WARMUP_RATIO
    from bertlab.bench_speed_worker import hf_recipe, nemo_config

    spec = {"task": "ner", "encoder": "minilm", "max_seq_length": 128, "batch_size": 32, "lr": 1e-4,
            "warmup_ratio": WARMUP_RATIO, "data_dir": "data", "epochs": 2}
    assert compose_config("train_ner").model.optim.sched.warmup_ratio == 0.0
    assert nemo_config(spec).optim.sched.warmup_ratio == WARMUP_RATIO == hf_recipe(spec)["warmup_ratio"] == 0.1


def test_script_help_lists_the_options_without_importing_torch():
    probe = ("import runpy, sys; sys.argv = [sys.argv[1], '--help']\n"
             "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "heavy = [m for m in ('nemo', 'torch', 'transformers') if m in sys.modules]; assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", probe, "scripts/benchmark_speed.py"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    for option in ("--task", "--device", "--encoder", "--epochs", "--precision", "--max-train"):
        assert option in result.stdout


def test_gpu_checks_script_runs_each_named_check_under_its_limit(tmp_path):
    """scripts/gpu_checks.sh, with a stand-in Python that records its arguments (one fails)."""
    stand_in = tmp_path / "python"
    stand_in.write_text('#!/bin/sh\necho "$@"\ncase "$*" in *--task\\ tc*) exit 3;; esac\n')
    stand_in.chmod(0o755)
    out = tmp_path / "out"
    env = {"PATH": "/usr/bin:/bin", "OUT": str(out), "PYTHON": str(stand_in), "GPU_CHECK_LIMIT": "30"}
    run = subprocess.run(["bash", "scripts/gpu_checks.sh", "ner", "tc", "pytest"], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    summary = [re.sub(r"after \d+ s", "after N s", line) for line in (out / "summary.txt").read_text().splitlines()]
    assert summary == ["ner: exit 0 after N s (limit 30 s)", "tc: exit 3 after N s (limit 30 s)",
                       "pytest: exit 0 after N s (limit 30 s)"]
    assert (out / "ner" / "log.txt").read_text() == f"scripts/benchmark_speed.py --epochs 5 --out-dir {out}/ner\n"
    assert (out / "pytest" / "log.txt").read_text() == "-m pytest -m gpu -q\n"
    typo_out = tmp_path / "typo"
    unknown = subprocess.run(["bash", "scripts/gpu_checks.sh", "ner", "graphs"], cwd=REPO,
                             env={**env, "OUT": str(typo_out)}, capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown check 'graphs'" in unknown.stderr
    assert not typo_out.exists()   # rejected before ner ran
