"""Reading ``.nemo`` archives without trusting them.

A ``.nemo`` is a tar of a YAML config that names the Python class to build (``target``) and a
pickled state dict. NeMo 2.4 imports whatever ``target`` names and unpickles the weights with
``torch.load(weights_only=False)``: loading somebody's model can run their code. Here:

- the config is read from the member NeMo itself would extract (a regular file named
  ``model_config.yaml`` at the archive's top, no ``..``, no absolute path, no link);
- ``target`` must be one of bertlab's task classes, checked before anything is imported
  (:func:`bertlab.restore.model_spec`);
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
        raise DataError(path, None, "is a directory, not a model file" if path.is_dir() else "no such model file")
    try:
        with tarfile.open(path, "r:*") as archive:
            members = [m for m in archive.getmembers()
                       if _is_safe_member(m) and os.path.normpath(m.name) == CONFIG_MEMBER]
            if not members:
                raise DataError(path, None, f"not a NeMo model: the archive has no {CONFIG_MEMBER}")
            text = archive.extractfile(members[-1]).read().decode("utf-8")
    except tarfile.TarError:
        raise DataError(path, None, "not a NeMo model: not a .nemo (tar) archive") from None
    except (EOFError, OSError) as error:
        raise DataError(path, None, f"not a NeMo model: cannot read the archive ({error})") from None
    except UnicodeDecodeError:
        raise DataError(path, None, f"not a NeMo model: its {CONFIG_MEMBER} is not UTF-8 text") from None
    try:
        cfg = OmegaConf.create(text)
    except Exception:  # OmegaConf raises several YAML and grammar errors
        cfg = None
    if not isinstance(cfg, DictConfig):
        raise DataError(path, None, f"not a NeMo model: its {CONFIG_MEMBER} is not a config")
    for key in ("language_model.pretrained_model_name", "tokenizer.tokenizer_name"):
        if not isinstance(OmegaConf.select(cfg, key, default=None), str):
            raise DataError(path, None, f"{CONFIG_MEMBER} has no {key}")
    return cfg


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
