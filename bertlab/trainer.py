"""Lightning Trainer arguments from the `trainer` config group, old course keys included."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

_MIXED_AMP_LEVELS = {"O1", "O2", "O3"}


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def trainer_kwargs(trainer_cfg: DictConfig) -> dict[str, Any]:
    """Translate Lightning 1.x keys (``gpus``, ``amp_level``) and pick a precision the
    device supports: fp16 mixed on CUDA, bf16 mixed on CPU."""
    kwargs = OmegaConf.to_container(trainer_cfg, resolve=True)
    gpus = kwargs.pop("gpus", None)
    amp_level = kwargs.pop("amp_level", None)

    if gpus is not None:
        if gpus == 0:
            kwargs.update(accelerator="cpu", devices=1)
        else:
            kwargs.update(accelerator="gpu", devices=gpus)
        log.warning("trainer.gpus=%s is Lightning 1.x; using accelerator=%s devices=%s",
                    gpus, kwargs["accelerator"], kwargs["devices"])

    on_gpu = kwargs.get("accelerator") in ("gpu", "cuda") or (
        kwargs.get("accelerator") == "auto" and _cuda_available()
    )
    precision = str(kwargs.get("precision", 32))
    if amp_level is not None and str(amp_level).upper() in _MIXED_AMP_LEVELS:
        precision = "16-mixed"
        log.warning("trainer.amp_level=%s is Lightning 1.x (apex); using native mixed precision", amp_level)
    if precision in ("16", "16-mixed") and not on_gpu:
        log.warning("fp16 mixed precision needs CUDA; using bf16-mixed on CPU")
        precision = "bf16-mixed"
    elif precision == "16":
        precision = "16-mixed"
    kwargs["precision"] = precision

    return kwargs
