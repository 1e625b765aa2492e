"""Restore a bertlab ``.nemo`` with no network: relocate the embedded encoder, go offline."""

from __future__ import annotations

import tarfile
from pathlib import Path

from omegaconf import OmegaConf, open_dict

from bertlab.encoders import go_offline_if_local, relocate_embedded_encoder


def read_nemo_config(nemo_path: str | Path):
    """The model config inside a ``.nemo`` archive, read without importing NeMo."""
    with tarfile.open(nemo_path, "r:*") as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("model_config.yaml"))
        return OmegaConf.create(archive.extractfile(member).read().decode("utf-8"))


def restore_model(nemo_path: str | Path, map_location: str | None = None):
    """Load a saved model; its encoder is rebuilt from the config stored in the archive."""
    nemo_path = Path(nemo_path)
    if not nemo_path.is_file():
        raise FileNotFoundError(f"{nemo_path}: no such .nemo file")
    cfg = read_nemo_config(nemo_path)
    with open_dict(cfg):
        cfg.language_model.pretrained_model_name = relocate_embedded_encoder(cfg.language_model.pretrained_model_name)
        cfg.tokenizer.tokenizer_name = relocate_embedded_encoder(cfg.tokenizer.tokenizer_name)
    go_offline_if_local(cfg.language_model.pretrained_model_name)  # before transformers is imported

    from nemo.utils.model_utils import import_class_by_path

    model_class = import_class_by_path(cfg.target)
    model = model_class.restore_from(str(nemo_path), override_config_path=cfg, map_location=map_location)
    model.eval()
    return model
