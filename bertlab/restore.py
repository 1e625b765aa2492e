"""Save and restore portable ``.nemo`` files, offline.

A saved model's config names no path of the machine that trained it: the embedded encoder
is stored as :data:`bertlab.encoders.EMBEDDED_MARKER` and resolved to this machine's copy
at restore; absolute training data paths keep only their file name (restoring never reads
them). Restoring needs bertlab and the archive, nothing else: no data, no network.
Restoring trusts nothing in the archive (see :mod:`bertlab.archive`): the config comes from
the safe member only, its class must be one of bertlab's task classes before anything is
imported, and the weights load with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from bertlab.archive import read_config as read_nemo_config
from bertlab.archive import weights_only_connector
from bertlab.encoders import go_offline_if_local, portable_encoder_name, relocate_embedded_encoder
from bertlab.io import DataError

# Config keys (inside the model config) that hold training data paths.
_DATA_PATH_KEYS = ("dataset.data_dir", "train_ds.file_path", "validation_ds.file_path", "test_ds.file_path")


def portable_config(cfg: DictConfig) -> DictConfig:
    """A resolved copy of a model config fit to travel: encoder marker, no absolute data paths."""
    portable = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    with open_dict(portable):
        if portable.get("language_model"):
            portable.language_model.pretrained_model_name = portable_encoder_name(
                portable.language_model.pretrained_model_name)
        if portable.get("tokenizer"):
            portable.tokenizer.tokenizer_name = portable_encoder_name(portable.tokenizer.tokenizer_name)
        for key in _DATA_PATH_KEYS:
            value = OmegaConf.select(portable, key)
            if isinstance(value, str) and Path(value).is_absolute():
                OmegaConf.update(portable, key, Path(value).name)
    return portable


def model_spec(nemo_path: str | Path):
    """The saved config and the task spec of a ``.nemo``, checked without importing NeMo or
    torch: a :class:`DataError` for anything that is not a bertlab model. The class the
    archive names is checked against bertlab's task classes before anything imports it."""
    from bertlab.tasks import TASK_SPECS, spec_for_target

    cfg = read_nemo_config(nemo_path)
    spec = spec_for_target(cfg.get("target"))
    if spec is None:
        known = ", ".join(spec.model_class_path for spec in TASK_SPECS.values())
        raise DataError(nemo_path, None, f"not a bertlab model: its class is {cfg.get('target')!r}; refusing to "
                                         f"import it (bertlab loads {known})")
    return cfg, spec


def restore_model(nemo_path: str | Path, map_location=None):
    """Load a saved bertlab model (on ``map_location``; default: a GPU if present, else the
    CPU, whatever device it was saved from); its encoder is rebuilt from the archive's config."""
    cfg, spec = model_spec(nemo_path)
    with open_dict(cfg):
        cfg.language_model.pretrained_model_name = relocate_embedded_encoder(cfg.language_model.pretrained_model_name)
        cfg.tokenizer.tokenizer_name = relocate_embedded_encoder(cfg.tokenizer.tokenizer_name)
    go_offline_if_local(cfg.language_model.pretrained_model_name)  # before transformers is imported

    model = spec.model_class.restore_from(str(nemo_path), override_config_path=cfg, map_location=map_location,
                                          save_restore_connector=weights_only_connector(nemo_path))
    model.eval()
    return model
