"""Tests for fetching the NCBI Disease corpus (local copies; downloads simulated, no network)."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from conftest import NCBI_DIR

from bertlab.data import download
from bertlab.data.download import (
    CONLL_FILENAMES,
    LOCAL_DIR_ENV,
    ORIGINAL_FILENAMES,
    DownloadError,
    fetch_ncbi_disease,
)
from bertlab.io import DataError

SHARED_DIR = NCBI_DIR


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record requested URLs; any request fails as it would offline. No local dir from the environment."""
    requested: list[str] = []

    def offline(url: str, timeout: float | None = None) -> io.BytesIO:
        requested.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.delenv(LOCAL_DIR_ENV, raising=False)
    return requested


def serve(monkeypatch: pytest.MonkeyPatch, bodies: dict[str, bytes]) -> list[str]:
    """Make urlopen answer each URL whose file name is a key with that body."""
    requested: list[str] = []

    def fake_urlopen(url: str, timeout: float | None = None) -> io.BytesIO:
        requested.append(url)
        return io.BytesIO(bodies[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return requested


def zipped(filename: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"NCBI/{filename}", content)
    return buffer.getvalue()


def original_zips(truncate_train: bool = False) -> dict[str, bytes]:
    bodies = {}
    for split, name in ORIGINAL_FILENAMES.items():
        content = (SHARED_DIR / "original" / name).read_bytes()
        if truncate_train and split == "train":
            content = content[: len(content) // 2].rsplit(b"\n\n", 1)[0] + b"\n"
        bodies[Path(name).stem + ".zip"] = zipped(name, content)
    return bodies


@pytest.mark.parametrize(("kind", "filenames"), [("original", ORIGINAL_FILENAMES), ("conll", CONLL_FILENAMES)])
def test_shared_layout_is_used_in_place(
    tmp_path: Path, kind: str, filenames: dict[str, str], no_network: list[str]
) -> None:
    paths = fetch_ncbi_disease(tmp_path / "dest", local_dir=SHARED_DIR, kind=kind)
    assert paths == {split: SHARED_DIR / kind / name for split, name in filenames.items()}
    assert not (tmp_path / "dest").exists()
    assert no_network == []


def test_directory_holding_the_files_directly(tmp_path: Path) -> None:
    for name in ORIGINAL_FILENAMES.values():
        (tmp_path / name).symlink_to(SHARED_DIR / "original" / name)
    paths = fetch_ncbi_disease(tmp_path / "dest", local_dir=tmp_path)
    assert paths == {split: tmp_path / name for split, name in ORIGINAL_FILENAMES.items()}


def test_environment_variable_names_the_local_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCAL_DIR_ENV, str(SHARED_DIR))
    paths = fetch_ncbi_disease(tmp_path / "dest", kind="conll")
    assert paths["dev"] == SHARED_DIR / "conll" / "devel.tsv"


def test_local_dir_without_the_files_lists_what_it_expects(tmp_path: Path) -> None:
    (tmp_path / "NCBItrainset_corpus.txt").symlink_to(SHARED_DIR / "original" / "NCBItrainset_corpus.txt")
    with pytest.raises(DataError, match=r"not found here or in original/.*NCBIdevelopset_corpus\.txt"):
        fetch_ncbi_disease(tmp_path / "dest", local_dir=tmp_path)


def test_local_file_with_too_few_abstracts_is_rejected(tmp_path: Path) -> None:
    for name in ORIGINAL_FILENAMES.values():
        (tmp_path / name).symlink_to(SHARED_DIR / "original" / name)
    (tmp_path / "NCBItestset_corpus.txt").unlink()
    (tmp_path / "NCBItestset_corpus.txt").write_text("1|t|Title.\n1|a|Text.\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"NCBItestset_corpus\.txt: has 1 abstracts, expected 100"):
        fetch_ncbi_disease(tmp_path / "dest", local_dir=tmp_path)


def test_local_conll_file_with_one_column_is_rejected(tmp_path: Path) -> None:
    for name in CONLL_FILENAMES.values():
        (tmp_path / name).write_text("Token\tO\n\nsecond\tO\n", encoding="utf-8")
    (tmp_path / "test.tsv").write_text("Token\tO\nbroken\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test\.tsv:2: expected two tab-separated columns"):
        fetch_ncbi_disease(tmp_path / "dest", local_dir=tmp_path, kind="conll")


def test_download_failure_says_to_set_the_local_dir_variable(tmp_path: Path, no_network: list[str]) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match=f"could not download .*NCBItrainset_corpus.zip.*set {LOCAL_DIR_ENV}"):
        fetch_ncbi_disease(dest)
    assert no_network == [download.NCBI_BASE_URL + "NCBItrainset_corpus.zip"]
    assert list(dest.iterdir()) == []  # the staging directory is gone too


def test_download_unzips_verifies_and_moves_into_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requested = serve(monkeypatch, original_zips())
    dest = tmp_path / "dest"
    paths = fetch_ncbi_disease(dest)
    assert paths == {split: dest / name for split, name in ORIGINAL_FILENAMES.items()}
    assert requested == [download.NCBI_BASE_URL + Path(n).stem + ".zip" for n in ORIGINAL_FILENAMES.values()]
    assert sorted(p.name for p in dest.iterdir()) == sorted(ORIGINAL_FILENAMES.values())
    assert (dest / "NCBIdevelopset_corpus.txt").read_bytes() == (
        SHARED_DIR / "original" / "NCBIdevelopset_corpus.txt"
    ).read_bytes()


def test_conll_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = {name: (SHARED_DIR / "conll" / name).read_bytes() for name in CONLL_FILENAMES.values()}
    requested = serve(monkeypatch, bodies)
    paths = fetch_ncbi_disease(tmp_path, kind="conll")
    assert requested == [download.CONLL_BASE_URL + name for name in CONLL_FILENAMES.values()]
    assert paths["test"].read_bytes() == bodies["test.tsv"]


def test_files_already_in_dest_are_not_downloaded_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, original_zips())
    fetch_ncbi_disease(tmp_path)
    requested = serve(monkeypatch, {})
    fetch_ncbi_disease(tmp_path)
    assert requested == []


def test_incomplete_download_is_not_moved_into_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, original_zips(truncate_train=True))
    with pytest.raises(DownloadError, match=r"NCBItrainset_corpus.zip is not the expected .*expected 593"):
        fetch_ncbi_disease(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_download_that_is_not_a_zip_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, {Path(n).stem + ".zip": b"<html>moved</html>" for n in ORIGINAL_FILENAMES.values()})
    with pytest.raises(DownloadError, match="not a valid zip file"):
        fetch_ncbi_disease(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_kind_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kind 'bioc'"):
        fetch_ncbi_disease(tmp_path, local_dir=SHARED_DIR, kind="bioc")
