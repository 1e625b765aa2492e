"""Run records: the hyperparameters that identify a run."""

from __future__ import annotations

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
    _visit(flat, "environment", environment)
    return flat
