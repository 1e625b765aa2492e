"""Lightning Trainer arguments from the `trainer` config group, old course keys included,
and the record of what a run actually ran on."""

from __future__ import annotations

import logging
import platform
import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bertlab.config import ConfigError

log = logging.getLogger(__name__)

_MIXED_AMP_LEVELS = {"O1", "O2", "O3"}
_CUDA_ACCELERATORS = ("gpu", "cuda")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _cuda_bf16() -> bool:
    """bf16 tensor cores (Ampere and later); fp16 mixed needs a loss scaler, bf16 does not."""
    import torch

    return torch.cuda.is_bf16_supported()


def trainer_kwargs(trainer_cfg: DictConfig) -> dict[str, Any]:
    """Resolve the device and precision, and translate Lightning 1.x keys (``gpus``, ``amp_level``).

    ``accelerator: auto`` becomes ``gpu`` when CUDA is there, else ``cpu``; ``precision: auto``
    becomes bf16 mixed on a GPU that supports it, fp16 mixed on older GPUs, 32 on CPU. An
    explicit fp16 request on CPU becomes bf16 mixed (CPU autocast has no fp16). Asking for a
    GPU where there is none is a :class:`ConfigError`.
    """
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

    accelerator = str(kwargs.get("accelerator", "auto"))
    if accelerator == "auto":
        accelerator = "gpu" if _cuda_available() else "cpu"
    elif accelerator in _CUDA_ACCELERATORS and not _cuda_available():
        raise ConfigError(f"trainer.accelerator={accelerator} needs a CUDA GPU and torch sees none here; "
                          "drop trainer=gpu (the default trainer picks the device) or use trainer=cpu")
    kwargs["accelerator"] = accelerator
    on_gpu = accelerator in _CUDA_ACCELERATORS

    precision = str(kwargs.get("precision", "auto"))
    if amp_level is not None and str(amp_level).upper() in _MIXED_AMP_LEVELS:
        precision = "16-mixed"
        log.warning("trainer.amp_level=%s is Lightning 1.x (apex); using native mixed precision", amp_level)
    if precision == "auto":
        precision = ("bf16-mixed" if _cuda_bf16() else "16-mixed") if on_gpu else "32"
    elif precision in ("16", "16-mixed") and not on_gpu:
        log.warning("fp16 mixed precision needs CUDA; using bf16-mixed on CPU")
        precision = "bf16-mixed"
    elif precision == "16":
        precision = "16-mixed"
    kwargs["precision"] = precision
    return kwargs


# Devices where torch (>= 2.4) has a fused Adam/AdamW kernel. On this project's 2-core CPU the
# fused step over MiniLM's 22.7M parameters alone takes a tenth of the default per-tensor loop's
# time (end to end, the CPU speed benchmark moved by 2%: README, Speed).
FUSED_ADAMW_DEVICES = ("cuda", "cpu")


def use_fused_adamw(optimizer: str | None, fused: bool | None, device_type: str | None, precision: str,
                    gradient_clip_val: float | None) -> bool:
    """Whether to ask torch for the fused (single-kernel) Adam/AdamW: on CUDA and on the CPU when
    ``model.optim.fused`` is null, except with fp16 gradient scaling plus clipping, because a
    fused optimizer unscales inside ``step()`` and Lightning then refuses to clip.
    ``device_type``: where all trainable parameters are (None: not all on one device type)."""
    if fused is not None or optimizer not in ("adam", "adamw") or device_type not in FUSED_ADAMW_DEVICES:
        return False
    return not (precision in ("16-mixed", "16") and (gradient_clip_val or 0) > 0)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_environment(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What a run ran on: the effective trainer settings (from :func:`trainer_kwargs`), the
    device, and the library versions. Written beside config.yaml, which stays as composed."""
    import torch

    on_gpu = kwargs["accelerator"] in _CUDA_ACCELERATORS
    device = {"cpu": cpu_model(), "cpu_cores": cpu_cores()}
    if on_gpu:
        device.update(gpu=torch.cuda.get_device_name(), gpu_count=torch.cuda.device_count(),
                      cuda=str(torch.version.cuda))
    return {
        "trainer": {key: kwargs.get(key) for key in ("accelerator", "devices", "num_nodes", "strategy", "precision")},
        "device": device,
        "versions": {"python": sys.version.split()[0], "torch": str(torch.__version__),
                     **{name: _version(name) for name in ("lightning", "nemo_toolkit", "transformers")}},
        "platform": platform.platform(),
    }


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity, which a container or taskset narrows)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
