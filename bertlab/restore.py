"""Restore a bertlab ``.nemo`` with no network: relocate the embedded encoder, go offline."""

from __future__ import annotations

from pathlib import Path

from omegaconf import open_dict

from bertlab.archive import read_config as read_nemo_config
from bertlab.archive import weights_only_connector
from bertlab.encoders import go_offline_if_local, relocate_embedded_encoder


def restore_model(nemo_path: str | Path, map_location: str | None = None):
    """Load a saved model; its encoder is rebuilt from the config stored in the archive."""
    nemo_path = Path(nemo_path)
    cfg = read_nemo_config(nemo_path)  # DataError for anything but a bertlab model archive
    with open_dict(cfg):
        cfg.language_model.pretrained_model_name = relocate_embedded_encoder(cfg.language_model.pretrained_model_name)
        cfg.tokenizer.tokenizer_name = relocate_embedded_encoder(cfg.tokenizer.tokenizer_name)
    go_offline_if_local(cfg.language_model.pretrained_model_name)  # before transformers is imported

    from nemo.utils.model_utils import import_class_by_path

    model_class = import_class_by_path(cfg.target)
    model = model_class.restore_from(str(nemo_path), override_config_path=cfg, map_location=map_location,
                                     save_restore_connector=weights_only_connector(nemo_path))
    model.eval()
    return model
