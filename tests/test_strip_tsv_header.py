"""Tests for the header-stripping, row-checking TSV converter and its script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NCBI_DIR, REPO

from bertlab.data.ncbi_tc3 import build_tc3
from bertlab.data.tsv import nemo_output_path, read_labeled_tsv, strip_tsv_header, strip_tsv_headers
from bertlab.io import DataError

SCRIPT = REPO / "scripts" / "strip_tsv_header.py"
ORIGINAL_DIR = NCBI_DIR / "original"


def write_tsv(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def run_script(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, check=False)


def test_header_row_is_detected_and_removed(tmp_path: Path) -> None:
    source = write_tsv(tmp_path / "train.tsv", 'sentence\tlabel\nHe said "yes"\t1\nno, \'really\'\t0\n')
    result = strip_tsv_header(source)
    assert result.output_path == tmp_path / "train_nemo_format.tsv"
    assert (result.rows_written, result.header_removed) == (2, True)
    assert result.output_path.read_text(encoding="utf-8") == 'He said "yes"\t1\nno, \'really\'\t0\n'


def test_file_without_header_keeps_its_first_row(tmp_path: Path) -> None:
    source = write_tsv(tmp_path / "dev.tsv", "first row\t2\nsecond row\t0\n")
    result = strip_tsv_header(source)
    assert (result.rows_written, result.header_removed) == (2, False)
    assert result.output_path.read_text(encoding="utf-8") == "first row\t2\nsecond row\t0\n"


def test_bom_and_crlf_input_gives_plain_lf_output(tmp_path: Path) -> None:
    source = write_tsv(tmp_path / "test.tsv", b"\xef\xbb\xbfsentence\tlabel\r\nfirst\t0\r\nsecond\t1\r\n")
    result = strip_tsv_header(source, num_classes=2)
    assert result.header_removed
    assert result.output_path.read_bytes() == b"first\t0\nsecond\t1\n"


def test_output_goes_to_out_dir(tmp_path: Path) -> None:
    source = write_tsv(tmp_path / "train.tsv", "text\t0\n")
    result = strip_tsv_header(source, out_dir=tmp_path / "nemo")
    assert result.output_path == tmp_path / "nemo" / "train_nemo_format.tsv"
    assert result.output_path.is_file()


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ("sentence\tlabel\nno tab here 1\n", 2, "no tab"),
        ("a\t0\nb\t1\textra\n", 2, "3 tab-separated columns, expected 2"),
        ("sentence\tlabel\na\t0\nb\tone\n", 3, "label 'one' is not an integer"),
        ("a\t0\nb\t 1\n", 2, "label ' 1' is not an integer"),
        ("a\t0\nb\t3\n", 2, r"label 3 out of range \[0, 3\)"),
        ("a\t-1\n", 1, r"label -1 out of range \[0, 3\)"),
        ("sentence\tlabel\n \t1\n", 2, "empty text"),
        ("a\t0\n\nb\t1\n", 2, "empty line"),
        ("sentence\tlabel\nsentence\tlabel\n", 2, "label 'label' is not an integer"),
    ],
)
def test_bad_rows_fail_with_file_and_line(tmp_path: Path, content: str, line: int, reason: str) -> None:
    source = write_tsv(tmp_path / "bad.tsv", content)
    with pytest.raises(DataError, match=rf"^{source}:{line}: {reason}"):
        strip_tsv_header(source, num_classes=3)
    assert list(tmp_path.iterdir()) == [source]  # no output, not even a temp file


def test_negative_label_is_rejected_without_num_classes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r":1: label -2 out of range >= 0"):
        read_labeled_tsv(write_tsv(tmp_path / "bad.tsv", "a\t-2\n"))


def test_existing_output_is_untouched_on_error(tmp_path: Path) -> None:
    source = write_tsv(tmp_path / "train.tsv", "a\t0\nb\n")
    existing = write_tsv(nemo_output_path(source), "previous good output\t1\n")
    with pytest.raises(DataError):
        strip_tsv_header(source)
    assert existing.read_text(encoding="utf-8") == "previous good output\t1\n"


def test_bad_file_among_several_leaves_every_output_unwritten(tmp_path: Path) -> None:
    good = write_tsv(tmp_path / "train.tsv", "a\t0\n")
    bad = write_tsv(tmp_path / "dev.tsv", "a\t9\n")
    with pytest.raises(DataError, match=r"dev\.tsv:1: label 9"):
        strip_tsv_headers([good, bad], num_classes=3)
    assert not nemo_output_path(good).exists()


def test_refuses_to_write_over_an_input(tmp_path: Path) -> None:
    source = write_tsv(tmp_path / "train.tsv", "a\t0\n")
    other_input = write_tsv(tmp_path / "train_nemo_format.tsv", "b\t1\n")
    with pytest.raises(DataError, match="would overwrite input"):
        strip_tsv_headers([source, other_input])
    assert other_input.read_text(encoding="utf-8") == "b\t1\n"


def test_refuses_an_output_that_is_a_link_to_the_input(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    source = write_tsv(tmp_path / "data" / "train.tsv", "a\t0\n")
    (tmp_path / "train_nemo_format.tsv").symlink_to(source)
    with pytest.raises(DataError, match="would overwrite input"):
        strip_tsv_header(source, out_dir=tmp_path)
    assert source.read_text(encoding="utf-8") == "a\t0\n"


def test_refuses_two_inputs_with_one_output(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = write_tsv(tmp_path / "a" / "x.tsv", "a\t0\n"), write_tsv(tmp_path / "b" / "x.tsv", "b\t0\n")
    with pytest.raises(DataError, match="is also the output of"):
        strip_tsv_headers([first, second], out_dir=tmp_path / "out")


def test_script_reports_each_output(tmp_path: Path) -> None:
    source = write_tsv(tmp_path / "train.tsv", "sentence\tlabel\na\t0\nb\t2\n")
    completed = run_script(source, "--num-classes", "3")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"{tmp_path / 'train_nemo_format.tsv'}: 2 rows (header removed)\n"


def test_script_exits_2_with_the_located_error(tmp_path: Path) -> None:
    source = write_tsv(tmp_path / "train.tsv", "sentence\tlabel\na\t0\nb\t5\n")
    completed = run_script(source, "--num-classes", "3")
    assert completed.returncode == 2
    assert completed.stderr == f"error: {source}:3: label 5 out of range [0, 3)\n"
    assert not (tmp_path / "train_nemo_format.tsv").exists()


def test_script_on_the_built_tc3_dataset(tmp_path: Path) -> None:
    counts = build_tc3(ORIGINAL_DIR, tmp_path)
    completed = run_script(*(tmp_path / f"{split}.tsv" for split in counts), "--num-classes", "3")
    assert completed.returncode == 0, completed.stderr
    for split, split_counts in counts.items():
        assert f"{split}_nemo_format.tsv: {sum(split_counts.values())} rows (header removed)" in completed.stdout
        body = (tmp_path / f"{split}.tsv").read_text(encoding="utf-8").split("\n", 1)[1]
        assert (tmp_path / f"{split}_nemo_format.tsv").read_text(encoding="utf-8") == body
