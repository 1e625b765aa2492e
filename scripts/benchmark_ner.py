"""Benchmark the default `make ner` recipe: test entity F1 >= 0.80 within 30 min of training.

  python scripts/benchmark_ner.py [overrides...]     (needs `make data`; ~25 min on 2 CPU cores)
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from bertlab.cli import check_overrides, exit_on_user_error
from bertlab.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_ner")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from bertlab.benchmark import run_benchmark
    from bertlab.tasks import task_spec

    if not run_benchmark(cfg, metric=task_spec(cfg.task).main_metric, target=0.80, max_fit_minutes=30):
        sys.exit(1)


if __name__ == "__main__":
    check_overrides(Path(__file__).parent.parent / "conf", "train_ner")
    main()
