"""The final model as the mean of the weights at the end of the last N training epochs
(``model.average_last_epochs``; fairseq's checkpoint averaging, without the checkpoints).

On a small dev split, keeping the epoch with the best dev score picks among models that
differ by one or two dev items; the mean of the last epochs' weights is one model, chosen by
no dev score. The learning-rate schedule is left alone (Lightning's StochasticWeightAveraging
callback replaces it with its own).
"""

from __future__ import annotations

import logging

import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)


def in_window(epoch: int, epochs: int, max_epochs: int) -> bool:
    """Whether ``epoch`` (counted from 0) is one of the last ``epochs`` of ``max_epochs``."""
    return epoch >= max_epochs - epochs


class RunningAverage:
    """The running mean of a model's floating-point state, on the model's device; other entries
    (integer buffers) keep the model's own values."""

    def __init__(self):
        self.count = 0
        self.mean: dict[str, torch.Tensor] | None = None

    def update(self, module: torch.nn.Module) -> None:
        state = {name: value.detach() for name, value in module.state_dict().items() if value.is_floating_point()}
        self.count += 1
        if self.mean is None:
            self.mean = {name: value.clone() for name, value in state.items()}
            return
        for name, mean in self.mean.items():
            mean.add_(state[name].to(mean.device) - mean, alpha=1 / self.count)

    def copy_to(self, module: torch.nn.Module) -> None:
        if self.mean is None:
            raise RuntimeError("no weights averaged yet")
        module.load_state_dict({**module.state_dict(), **self.mean})


class EpochWeightAverage(Callback):
    """Averages the weights at the end of each of the last ``epochs`` of ``trainer.max_epochs``;
    :meth:`apply` puts the mean into the model when training is done. The mean is part of the
    checkpoint, so a resumed run averages the same epochs."""

    def __init__(self, epochs: int):
        if epochs < 1:
            raise ValueError(f"epochs must be positive, got {epochs}")
        self.epochs = epochs
        self.average = RunningAverage()
        self.last_epoch = -1  # the last epoch averaged

    @property
    def state_key(self) -> str:
        return f"EpochWeightAverage{{epochs={self.epochs}}}"

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # Before bertlab's RunCheckpoint in the callback list, so the state it saves holds this epoch.
        # A run resumed from that state ends the same epoch again: it counts once.
        epoch = trainer.current_epoch
        if in_window(epoch, self.epochs, trainer.max_epochs) and epoch > self.last_epoch:
            self.average.update(pl_module)
            self.last_epoch = epoch
            log.info("epoch %d: weights averaged (%d of %d)", trainer.current_epoch + 1, self.average.count,
                     self.epochs)

    def apply(self, pl_module) -> bool:
        """The averaged weights into ``pl_module``; False when no epoch of the window ran (early stopping)."""
        if self.average.count == 0:
            log.warning("model.average_last_epochs=%d: training stopped before the last %d epochs; the "
                        "weights are not averaged", self.epochs, self.epochs)
            return False
        self.average.copy_to(pl_module)
        log.info("the model is the mean of the weights of the last %d epochs", self.average.count)
        return True

    def state_dict(self) -> dict:
        return {"count": self.average.count, "mean": self.average.mean, "last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        self.average.count, self.average.mean = state_dict["count"], state_dict["mean"]
        self.last_epoch = state_dict["last_epoch"]
