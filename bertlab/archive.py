"""Reading ``.nemo`` archives without trusting them.

A ``.nemo`` is a tar of a YAML config that names the Python class to build (``target``) and a
pickled state dict. NeMo 2.4 imports whatever ``target`` names and unpickles the weights with
``torch.load(weights_only=False)``: loading somebody's model can run their code. Here:

- the config is read from the member NeMo itself would extract (a regular file named
  ``model_config.yaml`` at the archive's top, no ``..``, no absolute path, no link);
- ``target`` must be one of bertlab's task classes, checked before anything is imported;
- the weights load with ``torch.load(weights_only=True)``: tensors and plain containers only;
- extraction stays NeMo's, which skips unsafe members.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bertlab.io import DataError

CONFIG_MEMBER = "model_config.yaml"
# The classes a bertlab model may name; anything else is refused before it is imported.
TRUSTED_TARGETS = frozenset({"bertlab.models.TextClassifier", "bertlab.models.TokenClassifier"})


def _is_safe_member(member: tarfile.TarInfo) -> bool:
    """NeMo's own extraction rule (``SaveRestoreConnector._is_safe_path``), for reading in place."""
    name = os.path.normpath(member.name)
    return member.isfile() and not os.path.isabs(name) and ".." not in name.split(os.sep)


def read_config(nemo_path: str | os.PathLike) -> DictConfig:
    """The model config inside a ``.nemo``, read without extracting or importing anything.

    Raises :class:`DataError` naming the file for anything that is not a readable bertlab
    model archive.
    """
    path = Path(nemo_path)
    if not path.is_file():
        raise DataError(path, None, "is a directory, not a .nemo file" if path.is_dir() else "file not found")
    try:
        with tarfile.open(path, "r:*") as archive:
            members = [m for m in archive.getmembers()
                       if _is_safe_member(m) and os.path.normpath(m.name) == CONFIG_MEMBER]
            if not members:
                raise DataError(path, None, f"not a NeMo model: no {CONFIG_MEMBER} in the archive")
            text = archive.extractfile(members[-1]).read().decode("utf-8")
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(path, None, f"not a readable .nemo archive ({error})") from None
    except UnicodeDecodeError:
        raise DataError(path, None, f"{CONFIG_MEMBER} is not UTF-8 text") from None
    try:
        cfg = OmegaConf.create(text)
    except Exception as error:  # OmegaConf raises several YAML and grammar errors
        raise DataError(path, None, f"{CONFIG_MEMBER} is not a valid config ({error})") from None
    if not isinstance(cfg, DictConfig):
        raise DataError(path, None, f"{CONFIG_MEMBER} is not a mapping")
    check_target(cfg, path)
    for key in ("language_model.pretrained_model_name", "tokenizer.tokenizer_name"):
        if not isinstance(OmegaConf.select(cfg, key, default=None), str):
            raise DataError(path, None, f"{CONFIG_MEMBER} has no {key}")
    return cfg


def check_target(cfg: DictConfig, nemo_path: str | os.PathLike) -> str:
    target = cfg.get("target")
    if target not in TRUSTED_TARGETS:
        raise DataError(nemo_path, None, f"refusing to load: the archive names class {target!r}, not one of "
                                         f"bertlab's ({', '.join(sorted(TRUSTED_TARGETS))})")
    return target


def weights_only_connector(nemo_path: str | os.PathLike):
    """NeMo's SaveRestoreConnector, loading the state dict of ``nemo_path`` with ``weights_only=True``."""
    import torch
    from nemo.core.connectors.save_restore_connector import SaveRestoreConnector

    class WeightsOnlyConnector(SaveRestoreConnector):
        @staticmethod
        def _load_state_dict_from_disk(model_weights, map_location=None):
            try:
                return torch.load(model_weights, map_location="cpu", weights_only=True)
            except Exception as error:  # torch raises UnpicklingError, RuntimeError, ... for foreign content
                raise DataError(nemo_path, None, "refusing to load: its weights hold more than tensors "
                                                 f"({type(error).__name__})") from None

    return WeightsOnlyConnector()
