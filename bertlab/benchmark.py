"""Accuracy and speed targets, checked by running the real recipe (scripts/benchmark_*.py)."""

from __future__ import annotations

import json
import platform
import time

from omegaconf import DictConfig

from bertlab.io import atomic_write


def run_benchmark(cfg: DictConfig, metric: str, target: float, max_fit_minutes: float) -> bool:
    """Train with ``cfg``; print the test metrics, the training wall time and whether the
    targets are met; write ``benchmark.json`` into the run directory."""
    from bertlab.train import train

    started = time.perf_counter()
    result = train(cfg)
    total_minutes = (time.perf_counter() - started) / 60
    fit_minutes = result.fit_seconds / 60
    passed = result.metrics.get(metric, 0.0) >= target and fit_minutes <= max_fit_minutes
    from omegaconf import OmegaConf

    ran = OmegaConf.load(result.log_dir / "environment.yaml")  # the device and precision that ran
    device = ran.device.get("gpu") or ran.trainer.accelerator
    report = {
        "run": str(result.log_dir),
        "machine": f"{platform.machine()}, {_cpu_count()} CPU cores, device={device}, "
                   f"precision={ran.trainer.precision}",
        "metrics": result.metrics,
        "fit_minutes": round(fit_minutes, 2),
        "total_minutes": round(total_minutes, 2),
        "targets": {metric: target, "fit_minutes": max_fit_minutes},
        "passed": passed,
    }
    with atomic_write(result.log_dir / "benchmark.json") as handle:
        json.dump(report, handle, indent=2)
    print("\n".join([
        f"benchmark: {result.log_dir}",
        *(f"  {name:<28}{value:.4f}" for name, value in result.metrics.items()),
        f"  training wall time          {fit_minutes:.1f} min (whole run {total_minutes:.1f} min)",
        f"  target {metric} >= {target} within {max_fit_minutes:g} min: {'PASS' if passed else 'FAIL'}",
    ]))
    return passed


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
