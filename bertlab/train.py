"""One training run, task-agnostic: trainer, exp_manager, model, fit, evaluate, save.

NeMo, torch and Lightning are imported inside :func:`train`, after the config checks.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bertlab.config import register_resolvers, require_values
from bertlab.encoders import check_tokenizer_casing, go_offline_if_local
from bertlab.io import atomic_write
from bertlab.tasks import TASKS

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    log_dir: Path
    nemo_path: Path | None
    metrics: dict = field(default_factory=dict)
    fit_seconds: float = 0.0


def train(cfg: DictConfig, callbacks: tuple = ()) -> RunResult:
    """Train, test and save one model; ``callbacks`` are extra Lightning callbacks (the speed
    benchmark times epochs with one)."""
    register_resolvers()
    require_values(cfg)
    task = TASKS[cfg.task]
    task.check(cfg)  # data files and labels, before the 20 s NeMo import
    go_offline_if_local(cfg.model.language_model.pretrained_model_name)
    from bertlab.trainer import run_environment, trainer_kwargs

    kwargs = trainer_kwargs(cfg.trainer)  # ConfigError before the NeMo import; cfg stays as composed

    import lightning.pytorch as pl
    from nemo.utils.exp_manager import exp_manager

    pl.seed_everything(cfg.seed, workers=True)
    trainer = pl.Trainer(**kwargs, callbacks=list(callbacks))
    log_dir = Path(exp_manager(trainer, cfg.get("exp_manager")))
    environment = run_environment(kwargs)
    if trainer.is_global_zero:
        save_run_record(log_dir, cfg, environment)

    model = task.model_class(cfg.model, trainer=trainer)
    check_tokenizer_casing(model.tokenizer, cfg.encoder.cased)
    started = time.perf_counter()
    trainer.fit(model)
    result = RunResult(log_dir=log_dir, nemo_path=None, fit_seconds=time.perf_counter() - started)
    print(f"rank {trainer.global_rank}/{trainer.world_size}: fit done at step {trainer.global_step}", flush=True)
    model = _best_weights(trainer, model)

    # The test: one pass over the test split that writes metrics.json and per-item
    # predictions (shared with scripts/evaluate_*.py). NeMo's datasets call
    # torch.distributed.barrier() while they are built, so every rank runs it; only rank 0
    # prints, writes and logs.
    rank_zero = trainer.is_global_zero
    with contextlib.nullcontext() if rank_zero else contextlib.redirect_stdout(io.StringIO()):
        result.metrics = task.evaluate(model, cfg, log_dir if rank_zero else None)
        task.show_inference(model, cfg)
    if rank_zero:
        _log_test_metrics(trainer, cfg, environment, result.metrics)
        result.nemo_path = Path(cfg.model.nemo_path or log_dir / f"{cfg.exp_manager.name}.nemo")
        model.save_to(str(result.nemo_path))
        log.info("saved %s", result.nemo_path)
    return result


def _best_weights(trainer, model):
    """Load the best checkpoint by the monitored validation metric, when there is one."""
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") if callback else ""
    if best and Path(best).is_file():
        import torch

        state = torch.load(best, map_location=model.device, weights_only=False)["state_dict"]
        model.load_state_dict(state)
        log.info("restored best checkpoint %s (%s=%s)", best, callback.monitor, callback.best_model_score)
    return model


def save_run_record(log_dir: Path, cfg: DictConfig, environment: dict | None = None) -> None:
    """The composed config, the command line and (``environment.yaml``) the effective device,
    precision and library versions, next to exp_manager's git-info.log."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(log_dir / "config.yaml") as handle:
        if environment is not None:
            ran = environment["trainer"]
            where = environment["device"].get("gpu") or environment["device"]["cpu"]
            handle.write(f"# ran on {ran['accelerator']} ({where}), precision {ran['precision']}; "
                         "see environment.yaml\n")
        handle.write(OmegaConf.to_yaml(cfg, resolve=True))
    if environment is not None:
        with atomic_write(log_dir / "environment.yaml") as handle:
            handle.write(OmegaConf.to_yaml(OmegaConf.create(environment)))
    with atomic_write(log_dir / "command.txt") as handle:
        handle.write(shlex.join([sys.executable, *sys.argv]) + "\n")


def _log_test_metrics(trainer, cfg: DictConfig, environment: dict, metrics: dict) -> None:
    """Test scalars at the last step, and hyperparameters (with the effective device,
    precision and versions under ``environment.*``) with final metrics in TensorBoard's
    hparams view (the run's latest hparams entry, so it replaces the model config NeMo logs
    at the start)."""
    from bertlab.runs import flat_environment, flat_hparams

    logger = trainer.logger
    if logger is None:
        return
    scalars = {f"test_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
    logger.log_metrics(scalars, step=trainer.global_step)
    hparams = {**flat_hparams(cfg), **flat_environment(environment)}
    logger.log_hyperparams(hparams, metrics={f"hparam/{k}": v for k, v in scalars.items()})
    logger.save()
