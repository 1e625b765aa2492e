"""Save and restore portable ``.nemo`` files, offline.

A saved model's config names no path of the machine that trained it: the embedded encoder
is stored as :data:`bertlab.encoders.EMBEDDED_MARKER` and resolved to this machine's copy
at restore; absolute training data paths keep only their file name (restoring never reads
them). Restoring needs bertlab and the archive, nothing else: no data, no network.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

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


def read_nemo_config(nemo_path: str | Path) -> DictConfig:
    """The model config inside a ``.nemo`` archive, read without importing NeMo.

    Raises :class:`DataError` (one line) for a missing file or one that is not a ``.nemo``.
    """
    nemo_path = Path(nemo_path)
    if not nemo_path.is_file():
        raise DataError(nemo_path, None, "no such model file")
    try:
        with tarfile.open(nemo_path, "r:*") as archive:
            member = next((m for m in archive.getmembers() if m.name.endswith("model_config.yaml")), None)
            if member is None:
                raise DataError(nemo_path, None, "not a NeMo model: the archive has no model_config.yaml")
            text = archive.extractfile(member).read().decode("utf-8")
    except tarfile.TarError:
        raise DataError(nemo_path, None, "not a NeMo model: not a .nemo (tar) archive") from None
    except (EOFError, OSError, UnicodeDecodeError) as err:
        raise DataError(nemo_path, None, f"not a NeMo model: cannot read the archive ({err})") from None
    try:
        cfg = OmegaConf.create(text)
    except yaml.YAMLError:
        cfg = None
    if not isinstance(cfg, DictConfig):
        raise DataError(nemo_path, None, "not a NeMo model: its model_config.yaml is not a config")
    return cfg


def model_spec(nemo_path: str | Path):
    """The saved config and the task spec of a ``.nemo``, checked without importing NeMo or
    torch: a :class:`DataError` for anything that is not a bertlab model."""
    from bertlab.tasks import spec_for_target

    cfg = read_nemo_config(nemo_path)
    spec = spec_for_target(cfg.get("target"))
    if spec is None:
        raise DataError(nemo_path, None, f"not a bertlab model: its class is {cfg.get('target')!r} "
                                         f"(train one with scripts/train_tc.py or scripts/train_ner.py)")
    return cfg, spec


def restore_model(nemo_path: str | Path, map_location=None):
    """Load a saved bertlab model (on ``map_location``; default: a GPU if present, else the
    CPU, whatever device it was saved from); its encoder is rebuilt from the archive's config."""
    cfg, spec = model_spec(nemo_path)
    with open_dict(cfg):
        cfg.language_model.pretrained_model_name = relocate_embedded_encoder(cfg.language_model.pretrained_model_name)
        cfg.tokenizer.tokenizer_name = relocate_embedded_encoder(cfg.tokenizer.tokenizer_name)
    go_offline_if_local(cfg.language_model.pretrained_model_name)  # before transformers is imported

    model = spec.model_class.restore_from(str(nemo_path), override_config_path=cfg, map_location=map_location)
    model.eval()
    return model
