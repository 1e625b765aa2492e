"""Shared fixtures: the real corpus, tiny slices of it, and the real Hydra configs, shrunk."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tarfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from bertlab.config import register_resolvers

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
# The corpus is read where it lies (never copied into the repo): $NCBI_DISEASE_DIR or ../shared.
NCBI_DIR = Path(os.environ.get("NCBI_DISEASE_DIR") or REPO.parent / "shared" / "datasets" / "ncbi-disease")

TINY_SIZES = {"train": 48, "dev": 24, "test": 24}


def compose_config(config_name: str, overrides: list[str] = (), return_hydra: bool = False) -> DictConfig:
    """The real config from conf/, composed as the scripts compose it (``return_hydra``: with
    its ``hydra`` node)."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides), return_hydra_config=return_hydra)


def shrink(cfg: DictConfig, exp_dir: Path, steps: int = 6) -> DictConfig:
    """A few CPU steps on short sequences, logs under ``exp_dir``."""
    with open_dict(cfg):
        cfg.trainer.update(max_epochs=2, max_steps=steps, log_every_n_steps=1,
                           val_check_interval=steps // 2, enable_progress_bar=False)
        cfg.exp_manager.exp_dir = str(exp_dir)
        cfg.model.dataset.max_seq_length = 64
        cfg.model.train_ds.batch_size = 8
        cfg.model.validation_ds.batch_size = 12
        cfg.model.test_ds.batch_size = 12
    return cfg


@pytest.fixture(scope="session")
def tiny_tc3(tmp_path_factory) -> Path:
    """NCBI_tc-3 built from the real corpus, cut to a few abstracts per split, header-stripped."""
    from bertlab.data.ncbi_tc3 import build_tc3
    from bertlab.data.tsv import read_labeled_tsv, write_nemo_tsv

    full, tiny = tmp_path_factory.mktemp("tc3_full"), tmp_path_factory.mktemp("tc3")
    build_tc3(NCBI_DIR / "original", full)
    for split, size in TINY_SIZES.items():
        write_nemo_tsv(read_labeled_tsv(full / f"{split}.tsv").rows[:size], tiny / f"{split}_nemo_format.tsv")
    return tiny


@pytest.fixture(scope="session")
def tiny_ner(tmp_path_factory) -> Path:
    """NeMo-format NER data from the CoNLL release, a few sentences with mentions per split."""
    from bertlab.data.iob import read_iob, write_nemo_dataset

    files = {"train": "train.tsv", "dev": "devel.tsv", "test": "test.tsv"}
    splits = {}
    for split, name in files.items():
        sentences, _ = read_iob(NCBI_DIR / "conll" / name)
        splits[split] = [s for s in sentences if any(t != "O" for t in s.tags)][: TINY_SIZES[split] * 2]
    out = tmp_path_factory.mktemp("ner")
    write_nemo_dataset(splits, out)
    return out


@pytest.fixture(scope="session")
def tiny_ner_documents(tmp_path_factory) -> Path:
    """NeMo-format NER data with ``docs_*.txt``: the first few whole abstracts of each split."""
    from bertlab.data.download import CONLL_FILENAMES, ORIGINAL_FILENAMES
    from bertlab.data.iob import write_nemo_dataset
    from bertlab.data.ncbi_iob import conll_splits

    splits = conll_splits({split: NCBI_DIR / "conll" / name for split, name in CONLL_FILENAMES.items()},
                          {split: NCBI_DIR / "original" / name for split, name in ORIGINAL_FILENAMES.items()})
    tiny = {}
    for split, (sentences, _) in splits.items():
        first = list(dict.fromkeys(s.document for s in sentences))[:{"train": 5, "dev": 3, "test": 3}[split]]
        tiny[split] = [s for s in sentences if s.document in first]
    out = tmp_path_factory.mktemp("ner_documents")
    write_nemo_dataset(tiny, out)
    return out


def tc_config(data_dir, exp_dir, overrides=()) -> DictConfig:
    """The 3-class classification config on ``data_dir``, shrunk."""
    cfg = compose_config("train_tc", ["model.dataset.num_classes=3", *overrides])
    with open_dict(cfg):
        cfg.data.dir = str(data_dir)
    return shrink(cfg, exp_dir)


def tiny_ner_run(data_dir, exp_dir, overrides=(), callbacks=()):
    """A few NER training steps on ``data_dir``, offline (``callbacks``: extra Lightning callbacks)."""
    from bertlab.train import train

    cfg = compose_config("train_ner", list(overrides))
    with open_dict(cfg):
        cfg.data.dir = str(data_dir)
    with forbid_network():
        return train(shrink(cfg, exp_dir, steps=8), callbacks=callbacks)


@pytest.fixture(scope="session")
def tc_run(tiny_tc3, tmp_path_factory):
    """One tiny classification run (with its .nemo), shared by every test that needs a model."""
    from bertlab.train import train

    with forbid_network():  # training, testing and saving with the embedded encoder stay offline
        return train(tc_config(tiny_tc3, tmp_path_factory.mktemp("exp")))


def classes_of_test_pass(log_dir: Path) -> list[str]:
    """The class a classification run's test pass gave each text, from its ``predictions.tsv``."""
    return [line.split("\t")[2] for line in (log_dir / "predictions.tsv").read_text().splitlines()[1:]]


@pytest.fixture(scope="session")
def ner_run(tiny_ner, tmp_path_factory):
    """One tiny NER run (with its .nemo), shared by every test that needs a model."""
    return tiny_ner_run(tiny_ner, tmp_path_factory.mktemp("exp"))


@contextlib.contextmanager
def forbid_network():
    """Any attempt to open a network connection inside the block fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield


@pytest.fixture
def no_network():
    with forbid_network():
        yield


def repack_archive(source, target, replace: dict[str, bytes] = (), extra: list[tuple[tarfile.TarInfo, bytes]] = ()):
    """A copy of the .nemo ``source`` with members replaced (by normalized name) and extra members added."""
    replace = dict(replace)
    with tarfile.open(source, "r:*") as src, tarfile.open(target, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            name = os.path.normpath(member.name)
            if name in replace:
                data = replace[name]
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
        for member, data in extra:
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return target


def archive_member(nemo_path, name: str) -> bytes:
    """The bytes of the member ``name`` (normalized) of the .nemo ``nemo_path``."""
    with tarfile.open(nemo_path, "r:*") as archive:
        member = next(m for m in archive.getmembers() if os.path.normpath(m.name) == name)
        return archive.extractfile(member).read()
