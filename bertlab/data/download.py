"""Fetch the NCBI Disease corpus: from a local directory when one is given, else from the web.

Two forms, chosen by ``kind``:

- ``"original"``: the release files from NCBI (one zip per split holding the ``.txt``).
- ``"conll"``: the CoNLL IOB files NeMo's token-classification tutorials download
  (github.com/spyysalo/ncbi-disease, ``conll/``).

A local copy is taken from ``local_dir`` or the ``NCBI_DISEASE_DIR`` environment variable;
it may hold the files directly or in the shared layout ``<dir>/original/``, ``<dir>/conll/``.
Every file is verified (abstract count, or two-column CoNLL rows) before it is returned;
downloads are verified in a staging directory and only then renamed into place.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from bertlab.data.ncbi_corpus import read_corpus
from bertlab.io import DataError, UserError, read_text_lines

log = logging.getLogger(__name__)

LOCAL_DIR_ENV = "NCBI_DISEASE_DIR"
NCBI_BASE_URL = "https://www.ncbi.nlm.nih.gov/CBBresearch/Dogan/DISEASE/"
CONLL_BASE_URL = "https://raw.githubusercontent.com/spyysalo/ncbi-disease/master/conll/"
ORIGINAL_FILENAMES = {
    "train": "NCBItrainset_corpus.txt",
    "dev": "NCBIdevelopset_corpus.txt",
    "test": "NCBItestset_corpus.txt",
}
CONLL_FILENAMES = {"train": "train.tsv", "dev": "devel.tsv", "test": "test.tsv"}
FILENAMES = {"original": ORIGINAL_FILENAMES, "conll": CONLL_FILENAMES}
# Abstracts per original file, counting the training file's repeated PMID 8528200 twice.
EXPECTED_ABSTRACTS = {"train": 593, "dev": 100, "test": 100}
DOWNLOAD_TIMEOUT_SECONDS = 60


class DownloadError(UserError, RuntimeError):
    """A corpus file could not be downloaded."""


def fetch_ncbi_disease(
    dest_dir: str | os.PathLike, local_dir: str | os.PathLike | None = None, kind: str = "original"
) -> dict[str, Path]:
    """Paths of the verified corpus files by split (``train``, ``dev``, ``test``).

    With ``local_dir`` (or ``$NCBI_DISEASE_DIR``) the files are used where they are;
    otherwise missing files are downloaded into ``dest_dir``.
    """
    if kind not in FILENAMES:
        raise ValueError(f"unknown kind {kind!r}, expected one of {sorted(FILENAMES)}")
    local_dir = local_dir or os.environ.get(LOCAL_DIR_ENV)
    if not local_dir:
        return {split: _downloaded(Path(dest_dir), split, kind) for split in FILENAMES[kind]}
    paths = _local_paths(Path(local_dir), kind)
    for split, path in paths.items():
        verify_corpus_file(path, split, kind)
    return paths


def verify_corpus_file(path: str | os.PathLike, split: str, kind: str) -> None:
    """Raise DataError unless ``path`` looks like the complete ``split`` file of ``kind``."""
    if kind == "original":
        count = len(read_corpus(path))
        if count != EXPECTED_ABSTRACTS[split]:
            raise DataError(path, None, f"has {count} abstracts, expected {EXPECTED_ABSTRACTS[split]}")
        return
    rows = 0
    for number, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        if len(line.split("\t")) != 2:
            raise DataError(path, number, "expected two tab-separated columns: token<TAB>tag")
        rows += 1
    if rows == 0:
        raise DataError(path, None, "no token rows")


def _local_paths(local_dir: Path, kind: str) -> dict[str, Path]:
    filenames = FILENAMES[kind]
    for directory in (local_dir, local_dir / kind):
        paths = {split: directory / name for split, name in filenames.items()}
        if all(path.is_file() for path in paths.values()):
            return paths
    raise DataError(
        local_dir, None,
        f"NCBI Disease {kind} files not found here or in {kind}/ (expected {', '.join(filenames.values())})",
    )


def _downloaded(dest_dir: Path, split: str, kind: str) -> Path:
    """``dest_dir/<file>``, downloaded unless a verified copy is already there."""
    filename = FILENAMES[kind][split]
    target = dest_dir / filename
    if target.is_file():
        try:
            verify_corpus_file(target, split, kind)
            return target
        except DataError as err:
            log.warning("%s; downloading it again", err)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".download-") as staging_dir:
        staged = Path(staging_dir) / filename
        if kind == "original":
            url = NCBI_BASE_URL + Path(filename).stem + ".zip"
        else:
            url = CONLL_BASE_URL + filename
        fetched = Path(staging_dir) / url.rsplit("/", 1)[1]
        _download(url, fetched, filename)
        try:
            if fetched != staged:
                _extract_member(fetched, filename, staged)
            verify_corpus_file(staged, split, kind)
        except DataError as err:
            raise DownloadError(f"{url} is not the expected {filename}: {err.reason}") from err
        os.replace(staged, target)
    return target


def _download(url: str, target: Path, wanted_file: str) -> None:
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"could not download {url}: {reason}. Without network access, set {LOCAL_DIR_ENV} "
            f"(or pass local_dir) to a directory holding {wanted_file}, directly or under original/ or conll/"
        ) from err


def _extract_member(archive: Path, filename: str, target: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [name for name in zipped.namelist() if Path(name).name == filename]
            if not members:
                raise DataError(archive, None, f"zip holds no {filename}")
            with zipped.open(members[0]) as member, open(target, "wb") as out:
                shutil.copyfileobj(member, out)
    except zipfile.BadZipFile as err:
        raise DataError(archive, None, f"not a valid zip file ({err})") from None
