"""One training run, task-agnostic: trainer, exp_manager, model, fit, evaluate, save.

NeMo, torch and Lightning are imported inside :func:`train`, after the config checks.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bertlab.config import ConfigError, check_layerwise_lr_decay, check_types, register_resolvers, require_values
from bertlab.encoders import check_encoder_source, check_tokenizer_casing, go_offline_if_local
from bertlab.io import atomic_write
from bertlab.logs import print_lightning_once, quiet_nemo, setup_run_logging
from bertlab.runs import exp_manager_config, run_inputs
from bertlab.tasks import task_spec

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    log_dir: Path
    nemo_path: Path | None
    metrics: dict = field(default_factory=dict)
    fit_seconds: float = 0.0
    best_val: float | None = None   # the monitored validation metric's best score (averaged weights: theirs)


def train(cfg: DictConfig, callbacks: tuple = ()) -> RunResult:
    """Train, test and save one model; ``callbacks`` are extra Lightning callbacks (the speed
    benchmark times epochs with one)."""
    register_resolvers()
    require_values(cfg)
    check_types(cfg)
    check_layerwise_lr_decay(cfg)
    task = task_spec(cfg.task)
    check_encoder_source(cfg.model.language_model.pretrained_model_name)
    task.check(cfg)  # data files and labels, before the 20 s NeMo import
    go_offline_if_local(cfg.model.language_model.pretrained_model_name)
    from bertlab.trainer import run_environment, trainer_kwargs

    kwargs = trainer_kwargs(cfg.trainer)  # ConfigError before the NeMo import; cfg stays as composed

    import lightning.pytorch as pl

    print_lightning_once()
    quiet_nemo(cfg.get("verbose", False))
    pl.seed_everything(cfg.seed, workers=True)
    from bertlab.checkpoints import BackgroundCheckpointIO

    averaging = _weight_averaging(cfg)
    trainer = pl.Trainer(**kwargs, callbacks=[*callbacks, *averaging], plugins=[BackgroundCheckpointIO()])
    log_dir = _exp_manager(trainer, exp_manager_config(cfg, trainer.global_rank))
    setup_run_logging(log_dir if trainer.is_global_zero else None)
    checkpoint = _add_callbacks(trainer, cfg.exp_manager, log_dir)
    environment = None
    if trainer.is_global_zero:  # the record (a git call, the data files hashed) is rank 0's to write
        environment = {"seed": cfg.seed, **run_environment(kwargs), **run_inputs(cfg)}
        save_run_record(log_dir, cfg, environment)

    model = _build_model(task, cfg, trainer)
    check_tokenizer_casing(model.tokenizer, cfg.encoder.cased)
    started = time.perf_counter()
    trainer.fit(model)
    result = RunResult(log_dir=log_dir, nemo_path=None, fit_seconds=time.perf_counter() - started,
                       best_val=checkpoint.best_score if checkpoint else None)
    print(f"rank {trainer.global_rank}/{trainer.world_size}: fit done at step {trainer.global_step}", flush=True)
    if averaging and averaging[0].apply(model):
        result.best_val = _validate(trainer, model, cfg.exp_manager.checkpoint_callback_params.monitor)
    elif checkpoint is not None:
        _load_best_weights(model, checkpoint)

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
        save_model(model, result.nemo_path)
        log.info("saved %s", result.nemo_path)
    return result


def _build_model(task, cfg: DictConfig, trainer):
    """The task's NeMo model; an encoder that cannot be loaded (not on this machine, no network)
    is the user's to fix, not a traceback."""
    try:
        return task.model_class(cfg.model, trainer=trainer)
    except (OSError, ValueError) as error:
        name = cfg.model.language_model.pretrained_model_name
        if "Unable to instantiate HuggingFace" not in str(error) and name not in str(error):
            raise
        reason = str(error).split("Exception: ", 1)[-1].splitlines()[0]
        raise ConfigError(f"model.language_model.pretrained_model_name: cannot load {name!r}: {reason}") from None


def save_model(model, path: Path) -> None:
    """``model.save_to`` under a temporary name, renamed into place: NeMo writes the archive in
    place, so a kill while saving would leave a truncated ``.nemo`` at the final path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.nemo")
    try:
        model.save_to(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _exp_manager(trainer, exp_cfg: DictConfig) -> Path:
    """NeMo's exp_manager; resuming with nothing to resume from is the user's to decide."""
    from nemo.utils.exp_manager import NotFoundError, exp_manager

    try:
        return Path(exp_manager(trainer, exp_cfg))
    except NotFoundError:
        run_dir = Path(exp_cfg.exp_dir) / exp_cfg.name / (exp_cfg.version or "")
        raise ConfigError(
            f"exp_manager.resume_if_exists: no checkpoint to resume in {run_dir / 'checkpoints'}; to start "
            "this run from scratch there, add exp_manager.resume_ignore_no_checkpoint=true") from None


def _add_callbacks(trainer, exp_cfg: DictConfig, log_dir: Path):
    """bertlab's checkpoints (see :mod:`bertlab.checkpoints`); early stopping is exp_manager's."""
    from bertlab.checkpoints import RunCheckpoint

    if not exp_cfg.create_checkpoint_callback:
        return None
    params = exp_cfg.checkpoint_callback_params
    checkpoint = RunCheckpoint(log_dir / "checkpoints", monitor=params.monitor, mode=params.mode)
    trainer.callbacks.append(checkpoint)
    return checkpoint


def _weight_averaging(cfg: DictConfig) -> list:
    """``model.average_last_epochs`` > 0: the callback that averages the last epochs' weights (it
    goes before bertlab's checkpoint callback, whose saved state must hold each epoch's mean)."""
    epochs = cfg.model.get("average_last_epochs", 0)
    if not epochs:
        return []
    from bertlab.averaging import EpochWeightAverage

    return [EpochWeightAverage(epochs)]


def _validate(trainer, model, monitor: str) -> float | None:
    """The model's score on the validation split, as the training loop's validation computes it."""
    scores = trainer.validate(model, verbose=False)
    value = scores[0].get(monitor) if scores else None
    log.info("the averaged weights: %s=%s", monitor, "n/a" if value is None else f"{value:.4f}")
    return value


def _load_best_weights(model, checkpoint) -> None:
    """The weights with the best monitored validation score, when a validation ran."""
    path = checkpoint.best_weights_path
    if not path.is_file():
        return
    import torch

    state = torch.load(path, map_location=model.device, weights_only=True)
    model.load_state_dict(state["state_dict"])
    log.info("restored the best weights, %s=%.4f at step %d (%s)", state["monitor"], state["score"],
             state["global_step"], path)


def save_run_record(log_dir: Path, cfg: DictConfig, environment: dict) -> None:
    """The composed config, the command line and (``environment.yaml``) the effective device,
    precision, library versions, seed, commit and data checksums, next to exp_manager's
    git-info.log."""
    log_dir.mkdir(parents=True, exist_ok=True)
    ran = environment["trainer"]
    where = environment["device"].get("gpu") or environment["device"]["cpu"]
    with atomic_write(log_dir / "config.yaml") as handle:
        handle.write(f"# ran on {ran['accelerator']} ({where}), precision {ran['precision']}; "
                     "see environment.yaml\n")
        handle.write(OmegaConf.to_yaml(cfg, resolve=True))
    with atomic_write(log_dir / "environment.yaml") as handle:
        handle.write(OmegaConf.to_yaml(OmegaConf.create(environment)))
    with atomic_write(log_dir / "command.txt") as handle:
        handle.write(shlex.join([sys.executable, *sys.argv]) + "\n")


def _log_test_metrics(trainer, cfg: DictConfig, environment: dict, metrics: dict) -> None:
    """Test scalars at the last step, and the run's hyperparameters (with the effective device,
    precision and versions under ``environment.*``) in TensorBoard's hparams view, with those
    test scalars as its metric columns (the run's latest hparams entry, so it replaces the
    model config NeMo logs at the start). Lightning's ``log_hyperparams(params, metrics)``
    would also log each metric again as a one-point ``hparam/*`` scalar card."""
    from torch.utils.tensorboard.summary import hparams

    from bertlab.runs import flat_environment, flat_hparams

    logger = trainer.logger
    if logger is None:
        return
    scalars = {f"test_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
    logger.log_metrics(scalars, step=trainer.global_step)
    writer = logger.experiment.file_writer
    for summary in hparams({**flat_hparams(cfg), **flat_environment(environment)}, scalars):
        writer.add_summary(summary)
    logger.save()
