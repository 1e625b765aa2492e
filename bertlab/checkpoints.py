"""Checkpoints named by what they hold, one write per validation.

``checkpoints/last.ckpt`` is the full training state (weights, optimizer, schedulers, loop
progress) that ``exp_manager.resume_if_exists`` resumes from; ``checkpoints/best.weights.ckpt``
holds only the weights with the best monitored validation score, for testing and the
``.nemo``. Lightning's ModelCheckpoint with ``save_last`` writes twice whenever the score
improves and keeps optimizer state in both; here an improving validation writes the full
state once, as ``best.ckpt``, and ``last.ckpt`` becomes a link to it. When training ends,
the best state is slimmed to weights only. Every file is written under a temporary name and
renamed, so a kill never leaves a half-written checkpoint behind.

Writes happen in the background (:class:`BackgroundCheckpointIO`): the state is copied to host
memory, then a writer thread serializes it while training goes on. A BERT-base state with
AdamW's moments is 1.3 GB; writing it held every epoch up by seconds on a GPU.
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn

from bertlab.io import DataError, umask_mode

log = logging.getLogger(__name__)

LAST = "last.ckpt"
BEST_FULL = "best.ckpt"
BEST_WEIGHTS = "best.weights.ckpt"


class RunCheckpoint(Callback):
    def __init__(self, dirpath: str | os.PathLike, monitor: str, mode: str = "max"):
        if mode not in ("max", "min"):
            raise ValueError(f"checkpoint mode must be max or min, got {mode!r}")
        self.dirpath, self.monitor, self.mode = Path(dirpath), monitor, mode
        self.best_score: float | None = None
        self.best_step: int | None = None
        self._saved_step: int | None = None
        self._pending: bool | None = None   # a validation to save: True if it improved the score

    @property
    def state_key(self) -> str:
        return f"RunCheckpoint{{monitor={self.monitor}}}"

    @property
    def last_path(self) -> Path:
        return self.dirpath / LAST

    @property
    def best_weights_path(self) -> Path:
        return self.dirpath / BEST_WEIGHTS

    def _improved(self, score: float) -> bool:
        if math.isnan(score):
            return False
        if self.best_score is None:
            return True
        return score > self.best_score if self.mode == "max" else score < self.best_score

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != TrainerFn.FITTING:
            return  # trainer.validate() (after fit, for averaged weights) saves nothing
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            raise KeyError(f"checkpoint monitor {self.monitor!r} was not logged; logged: "
                           f"{sorted(trainer.callback_metrics)}")
        score = float(value)
        improved = self._improved(score)
        if improved:
            self.best_score, self.best_step = score, trainer.global_step
        log.info("step %d: %s=%.4f%s", trainer.global_step, self.monitor, score,
                 " (the best so far)" if improved else f" (best {self.best_score:.4f} at step {self.best_step})")
        self._pending = improved
        # A validation at the end of the epoch is saved when the epoch has ended: Lightning's
        # loop state saved from inside the epoch makes a resumed run repeat a step.
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._save_pending(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save_pending(trainer)

    def _save_pending(self, trainer) -> None:
        if self._pending is None:
            return
        path = self.dirpath / BEST_FULL if self._pending else self.last_path
        # last.ckpt links to best.ckpt only once best.ckpt is complete.
        self._save(trainer, path, then=(lambda: _link(self.last_path, BEST_FULL)) if self._pending else None)
        self._pending = None
        log.info("saved %s", path)
        trainer.strategy.barrier("RunCheckpoint.save")

    def on_train_end(self, trainer, pl_module) -> None:
        self._save_pending(trainer)
        if trainer.global_step != self._saved_step:  # steps after the last validation: keep them resumable
            self._save(trainer, self.last_path)
        _io(trainer).wait()
        trainer.strategy.barrier("RunCheckpoint.on_train_end")
        if trainer.is_global_zero:
            self._slim_best()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """Ctrl-C: keep the work done and say how to resume. Lightning then shuts down and
        exits with status 1."""
        if not isinstance(exception, KeyboardInterrupt):
            return
        if trainer.global_step != self._saved_step:  # else last.ckpt already holds this step
            self._pending = None
            self._save(trainer, self.last_path)
        _io(trainer).wait()
        if trainer.is_global_zero and self.last_path.exists():
            run_dir = self.dirpath.parent
            log.warning("interrupted at step %d; saved %s. Resume with exp_manager.resume_if_exists=true "
                        "exp_manager.version=%s", trainer.global_step, self.last_path, run_dir.name)

    def _save(self, trainer, path: Path, then=None) -> None:
        """Lightning writes on rank 0 only, but every rank must call it. The write (and ``then``,
        on rank 0) runs in the background: see :class:`BackgroundCheckpointIO`."""
        trainer.save_checkpoint(path, storage_options={"then": then} if then else None)
        self._saved_step = trainer.global_step

    def _slim_best(self) -> None:
        """best.ckpt (full state) -> best.weights.ckpt; last.ckpt takes the full state if it linked to it."""
        best = self.dirpath / BEST_FULL
        if not best.is_file():
            return
        state = torch.load(best, map_location="cpu", weights_only=True)
        weights = {"state_dict": state["state_dict"], "global_step": state["global_step"],
                   "epoch": state["epoch"], "monitor": self.monitor, "score": self.best_score}
        tmp = self.best_weights_path.with_name(f".{BEST_WEIGHTS}.tmp")
        torch.save(weights, tmp)
        umask_mode(tmp)
        os.replace(tmp, self.best_weights_path)
        if self.last_path.is_symlink():
            os.replace(best, self.last_path)
        else:
            best.unlink()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        """Plain containers only, so that ``torch.load(weights_only=True)`` reads the file: NeMo's
        hyperparameters are an OmegaConf DictConfig, and Lightning stores its class."""
        from omegaconf import OmegaConf

        hparams = checkpoint.get("hyper_parameters")
        if hparams is not None:
            checkpoint["hyper_parameters"] = OmegaConf.to_container(OmegaConf.create(dict(hparams)), resolve=True)
        checkpoint.pop("hparams_type", None)

    def state_dict(self) -> dict[str, Any]:
        """The best score so far, and the random number generators' states: a resumed run draws
        the same shuffles and dropout masks as one never interrupted."""
        return {"monitor": self.monitor, "best_score": self.best_score, "best_step": self.best_step,
                "rng": _rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score, self.best_step = state_dict.get("best_score"), state_dict.get("best_step")
        if state_dict.get("rng"):
            _set_rng_states(state_dict["rng"])


def _rng_states() -> dict[str, Any]:
    """Python's, NumPy's and torch's generator states as tensors and plain containers, so the
    checkpoint still loads with ``weights_only=True``."""
    import random

    import numpy as np

    numpy_state = np.random.get_state()
    states = {"python": list(random.getstate()[1]), "python_version": random.getstate()[0],
              "python_gauss": random.getstate()[2],
              "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype("int64")), *numpy_state[2:]],
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    import random

    import numpy as np

    random.setstate((states["python_version"], tuple(states["python"]), states["python_gauss"]))
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy().astype("uint32"), *rest))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _link(path: Path, target: str) -> None:
    """``path`` -> ``target`` (relative), replacing whatever ``path`` was."""
    tmp = path.with_name(f".{path.name}.link")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def _io(trainer) -> BackgroundCheckpointIO:
    io = trainer.strategy.checkpoint_io
    if not isinstance(io, BackgroundCheckpointIO):
        raise TypeError(f"RunCheckpoint needs the trainer's plugins to include BackgroundCheckpointIO, not {type(io)}")
    return io


def _to_host(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A copy of a checkpoint's containers with every tensor copied to host memory."""
    from lightning_utilities.core.apply_func import apply_to_collection

    return apply_to_collection(checkpoint, torch.Tensor, lambda tensor: tensor.detach().to("cpu", copy=True))


class BackgroundCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO``, saving in a background thread and loading with
    ``torch.load(weights_only=True)``.

    Saving: the checkpoint's tensors are copied to host memory at once (so the optimizer steps
    that follow cannot leak into the file), then one writer thread writes them under a
    temporary name, renames the file into place and runs ``storage_options["then"]``, if
    given. A save first waits for the previous one, so at most one copy is held; :meth:`wait`
    waits for the last and re-raises its error. (Lightning's ``AsyncCheckpointIO`` writes the
    live tensors instead, while training changes them.)

    Loading: resuming from a ``last.ckpt`` someone else put in the run directory cannot run
    their code; bertlab's own checkpoints hold only tensors and plain containers (see
    ``RunCheckpoint.on_save_checkpoint``)."""

    def __init__(self) -> None:
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        self._pending: Future | None = None

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: dict | None = None) -> None:
        self.wait()
        then = (storage_options or {}).get("then")
        self._pending = self._writer.submit(self._write, _to_host(checkpoint), Path(path), then)

    def _write(self, checkpoint: dict[str, Any], path: Path, then) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            super().save_checkpoint(checkpoint, tmp)
            umask_mode(tmp)
            os.replace(tmp, path)  # replaces a link at ``path`` itself, never the file it points to
        finally:
            tmp.unlink(missing_ok=True)
        if then is not None:
            then()

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def load_checkpoint(self, path, map_location=None):
        from lightning.fabric.utilities.cloud_io import _load

        self.wait()
        try:
            return _load(path, map_location=map_location or (lambda storage, loc: storage), weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as error:  # torch raises UnpicklingError, RuntimeError, ... for foreign content
            raise DataError(path, None, "refusing to load: the checkpoint holds more than tensors and plain "
                                        f"containers ({type(error).__name__})") from None

    def teardown(self) -> None:
        self.wait()
