"""Run records and run directories: the hyperparameters that identify a run, and where it lives."""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# Config subtrees whose scalar values describe a run for comparison and TensorBoard hparams.
HPARAM_KEYS = ("task", "seed", "encoder.name", "trainer", "model.optim", "model.dataset",
               "model.train_ds.batch_size", "model.language_model.pretrained_model_name")


Scalar = int | float | str | bool


def _visit(flat: dict[str, Scalar], prefix: str, node) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _visit(flat, f"{prefix}.{key}" if prefix else str(key), value)
    elif isinstance(node, (bool, int, float, str)):
        flat[prefix] = node
    else:
        flat[prefix] = str(node)


def flat_hparams(cfg: DictConfig) -> dict[str, Scalar]:
    """Scalar hyperparameters as ``dotted.key: value`` (lists and nulls as strings)."""
    flat: dict[str, Scalar] = {}
    for key in HPARAM_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, DictConfig):
            value = OmegaConf.to_container(value, resolve=True)
        if value is not None:
            _visit(flat, key, value)
    return flat


def flat_environment(environment: dict) -> dict[str, Scalar]:
    """The run environment (``bertlab.trainer.run_environment``) as ``environment.dotted.key``."""
    flat: dict[str, Scalar] = {}
    # Checksums are for the record (environment.yaml), not columns to compare runs by.
    _visit(flat, "environment", {key: value for key, value in environment.items() if key != "data_sha256"})
    return flat


def run_inputs(cfg: DictConfig) -> dict:
    """What else a rerun needs to match: the git commit (and whether the tree had changes) and
    the SHA-256 of every data file the run reads."""
    import hashlib
    import subprocess

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30,
                                  cwd=Path(__file__).resolve().parent)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    from bertlab.tasks import task_spec

    files = [Path(path) for path in task_spec(cfg.task).data_files(cfg).values() if path]
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git": {"commit": git("rev-parse", "HEAD"), "changed": bool(status) if status is not None else None},
            "data_sha256": {str(path): hashlib.sha256(path.read_bytes()).hexdigest()
                            for path in files if path.is_file()}}


# --- where a run lives ---------------------------------------------------------------------------

VERSION_FORMAT = "%Y-%m-%d_%H-%M-%S"


def hydra_job_dir() -> Path | None:
    """The job's own directory in a Hydra multirun (``hydra.sweep.dir/subdir``); None otherwise."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    return Path(hydra_cfg.runtime.output_dir) if hydra_cfg.mode == RunMode.MULTIRUN else None


def claim_version(exp_cfg: DictConfig) -> str | None:
    """The version directory of a new run, created here so that no other run can take it.

    A user-given version, or a resumed run (NeMo resumes ``<exp_dir>/<name>`` without a
    version), stays as configured. A multirun job gets its Hydra job directory under
    ``<exp_dir>/<name>/``. Otherwise a timestamp, suffixed ``-1``, ``-2``... when another run
    started in the same second: NeMo alone would put both into one directory, and in a
    multirun every job into the first job's (it remembers the version in $NEMO_EXPM_VERSION).
    """
    if exp_cfg.get("version") or exp_cfg.get("resume_if_exists"):
        return exp_cfg.get("version")
    parent = Path(exp_cfg.exp_dir) / exp_cfg.name
    job_dir = hydra_job_dir()
    if job_dir is not None:
        with contextlib.suppress(ValueError):
            return job_dir.resolve().relative_to(parent.resolve()).as_posix()
    parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime(VERSION_FORMAT)
    for suffix in itertools.count():
        version = stamp if suffix == 0 else f"{stamp}-{suffix}"
        with contextlib.suppress(FileExistsError):
            (parent / version).mkdir()
            return version
    raise AssertionError("unreachable")


def exp_manager_config(cfg: DictConfig, global_rank: int) -> DictConfig:
    """What NeMo's exp_manager gets: bertlab's version choice, and no NeMo checkpoint callback
    (bertlab adds its own, see :mod:`bertlab.checkpoints`).

    Rank 0 claims the version and passes it to the DDP ranks it launches through
    $NEMO_EXPM_VERSION, which NeMo reads when the version is unset.
    """
    from nemo.constants import NEMO_ENV_VARNAME_VERSION

    exp_cfg = OmegaConf.create(OmegaConf.to_container(cfg.exp_manager, resolve=True))
    if global_rank == 0:
        exp_cfg.version = claim_version(exp_cfg)
        if exp_cfg.version:
            os.environ[NEMO_ENV_VARNAME_VERSION] = exp_cfg.version
    exp_cfg.create_checkpoint_callback = False
    return exp_cfg
