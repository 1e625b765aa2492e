"""CoNLL IOB reading, scheme conversion, NeMo writing and the reverse."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NCBI_DIR, REPO

from bertlab.data.iob import (
    Sentence,
    check_nemo_token_data,
    convert_corpus_dir,
    convert_file,
    detect_scheme,
    nemo_to_conll,
    read_conll,
    read_iob,
    read_nemo,
    split_long_sentences,
    write_nemo_dataset,
)
from bertlab.io import DataError

CONLL_DIR = NCBI_DIR / "conll"


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def conll(tmp_path: Path, text: str, name: str = "train.tsv") -> Path:
    return write_bytes(tmp_path / name, text.encode())


def words_and_tags(sentences: list[Sentence]) -> list[list[tuple[str, str]]]:
    return [list(zip(s.words, s.tags)) for s in sentences]


# --- reading -------------------------------------------------------------------------

# The first sentence of EXPECTED, tab-separated, without its blank line.
FIRST = b"Aspirin\tO\ncauses\tO\nReye\tB-Disease\nsyndrome\tI-Disease\n"
EXPECTED = [[("Aspirin", "O"), ("causes", "O"), ("Reye", "B-Disease"), ("syndrome", "I-Disease")], [(".", "O")]]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(FIRST + b"\n.\tO\n\n", id="plain"),
        pytest.param((FIRST + b"\n.\tO\n").replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(b"\xef\xbb\xbf" + FIRST + b"\n.\tO\n", id="bom"),
        pytest.param(FIRST.replace(b"O\n", b"O  \n").replace(b"e\n", b"e \t\n") + b"\n.\tO \n", id="trailing"),
        pytest.param(FIRST + b" \t \n.\tO", id="whitespace-separator-no-final-blank"),
        pytest.param(b"-DOCSTART-\tO\n\n" + FIRST + b"\n\n-DOCSTART- -X- O\n.\tO\n", id="docstart"),
        pytest.param(
            b"Aspirin NN O\ncauses  VBZ   O\nReye NNP B-Disease\nsyndrome NN I-Disease\n\n. . O\n", id="spaces"
        ),
    ],
)
def test_reader_handles_awkward_layouts(tmp_path: Path, raw: bytes) -> None:
    sentences, stats = read_iob(write_bytes(tmp_path / "train.tsv", raw))
    assert words_and_tags(sentences) == EXPECTED
    assert (stats.sentences, stats.tokens, stats.mentions) == (2, 5, 1)


@pytest.mark.parametrize(
    "text, line, reason",
    [
        ("a\tO\nlonely\n", 2, "one column"),
        ("a\tO\n\nb c\tO\n", 3, "whitespace"),
        ("a\tO\nb\tB_Disease\n", 2, "unknown tag"),
        ("a\tO\nb\tb-Disease\n", 2, "unknown tag"),
        ("a\tO\nb\tB-\n", 2, "unknown tag"),
    ],
)
def test_bad_lines_are_located(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = conll(tmp_path, text)
    with pytest.raises(DataError, match=reason) as caught:
        read_conll(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")


# --- schemes -------------------------------------------------------------------------


def tags_after(tmp_path: Path, tags: list[str], **options) -> tuple[list[str], object]:
    path = conll(tmp_path, "".join(f"w{i}\t{tag}\n" for i, tag in enumerate(tags)))
    sentences, stats = read_iob(path, **options)
    return list(sentences[0].tags), stats


def test_iob1_is_detected_and_converted(tmp_path: Path) -> None:
    tags, stats = tags_after(tmp_path, ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-PER"])
    assert tags == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-PER"]
    assert (stats.scheme, stats.repaired_starts, stats.mentions) == ("iob1", 0, 4)


@pytest.mark.parametrize(
    "raw",
    [["S-X", "O", "B-X", "I-X", "E-X", "S-Y"], ["U-X", "O", "B-X", "I-X", "L-X", "U-Y"]],
    ids=["iobes", "bilou"],
)
def test_iobes_and_bilou_become_iob2(tmp_path: Path, raw: list[str]) -> None:
    tags, stats = tags_after(tmp_path, raw)
    assert tags == ["B-X", "O", "B-X", "I-X", "I-X", "B-Y"]
    assert (stats.scheme, stats.mentions, stats.repaired_starts) == ("iobes", 3, 0)


def test_iob2_entity_initial_i_is_repaired_and_counted(tmp_path: Path) -> None:
    tags, stats = tags_after(tmp_path, ["B-X", "I-X", "O", "I-X", "I-X", "I-Y"])
    assert tags == ["B-X", "I-X", "O", "B-X", "I-X", "B-Y"]
    assert (stats.scheme, stats.repaired_starts, stats.mentions) == ("iob2", 2, 3)


def test_strict_rejects_entity_initial_i_with_its_line(tmp_path: Path) -> None:
    path = conll(tmp_path, "a\tB-X\nb\tI-X\n\nc\tO\nd\tI-X\n")
    with pytest.raises(DataError, match="starts an entity") as caught:
        read_iob(path, strict=True)
    assert str(caught.value).startswith(f"{path}:5: ")


def test_iobes_tag_in_declared_iob2_file_is_rejected(tmp_path: Path) -> None:
    path = conll(tmp_path, "a\tB-X\nb\tE-X\n")
    with pytest.raises(DataError, match="not valid in the IOB2") as caught:
        read_iob(path, scheme="iob2")
    assert str(caught.value).startswith(f"{path}:2: ")


def test_detect_scheme_prefers_iob2_when_b_starts_entities() -> None:
    iob2 = Sentence(("a", "b", "c"), ("B-X", "O", "I-X"))
    iob1 = Sentence(("a", "b", "c"), ("I-X", "B-X", "O"))
    assert detect_scheme([iob2]) == "iob2"
    assert detect_scheme([iob1]) == "iob1"


# --- long sentences --------------------------------------------------------------------


@pytest.mark.parametrize("max_words", [1, 2, 3, 4, 5, 20])
def test_long_sentences_are_never_cut_inside_an_entity(max_words: int) -> None:
    tags = ("O", "B-X", "I-X", "I-X", "O", "O", "B-X", "B-X", "I-X", "O", "O", "O")
    sentence = Sentence(tuple(f"w{i}" for i in range(len(tags))), tags)
    pieces = split_long_sentences([sentence], max_words)
    assert [w for p in pieces for w in p.words] == list(sentence.words)
    assert all(not p.tags[0].startswith("I-") for p in pieces)
    if max_words >= 3:  # longest entity is 3 words, so every piece fits
        assert all(len(p.words) <= max_words for p in pieces)


def test_sentence_without_safe_cut_is_kept_whole_and_counted(tmp_path: Path) -> None:
    path = conll(tmp_path, "a\tB-X\nb\tI-X\nc\tI-X\nd\tI-X\n\ne\tO\n")
    sentences, stats = read_iob(path, max_words=2)
    assert [len(s.words) for s in sentences] == [4, 1]
    assert (stats.long_unsplit, stats.split_sentences, stats.mentions) == (1, 0, 1)


# --- NeMo output -----------------------------------------------------------------------


def test_convert_dir_writes_nemo_files_and_renames_devel(tmp_path: Path) -> None:
    src = tmp_path / "src"
    conll(src, "Reye\tB-Disease\nsyndrome\tI-Disease\n.\tO\n", "train.txt")
    conll(src, "cancer\tB-Disease\n", "devel.conll")
    conll(src, "ok\tO\n", "test.tsv")
    conll(src, "ignored\tB-Other\n", "notes.tsv")
    out = tmp_path / "out"
    stats = convert_corpus_dir(src, out)
    assert list(stats) == ["train", "dev", "test"]
    assert sorted(p.name for p in out.iterdir()) == [
        "label_ids.csv", "labels_dev.txt", "labels_test.txt", "labels_train.txt",
        "text_dev.txt", "text_test.txt", "text_train.txt",
    ]  # fmt: skip
    assert (out / "text_train.txt").read_text() == "Reye syndrome .\n"
    assert (out / "labels_train.txt").read_text() == "B-Disease I-Disease O\n"
    assert (out / "text_dev.txt").read_text() == "cancer\n"
    # NeMo's get_label_ids: pad label first (id 0), the rest sorted, joined without a final newline.
    assert (out / "label_ids.csv").read_text() == "O\nB-Disease\nI-Disease"


def test_two_files_for_one_split_are_rejected(tmp_path: Path) -> None:
    conll(tmp_path, "a\tO\n", "dev.tsv")
    conll(tmp_path, "a\tO\n", "devel.tsv")
    with pytest.raises(DataError, match="two files for split 'dev'"):
        convert_corpus_dir(tmp_path, tmp_path / "out")


def test_existing_dataset_is_refused_or_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert_corpus_dir(write_bytes(tmp_path / "old" / "train.tsv", b"a\tB-Y\n").parent, out)
    write_bytes(tmp_path / "old" / "dev.tsv", b"a\tB-Y\n")
    convert_corpus_dir(tmp_path / "old", out, overwrite=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["label_ids.csv", "labels_dev.txt", "labels_train.txt", "text_dev.txt", "text_train.txt"]

    new = conll(tmp_path, "a\tB-X\nb\tO\n", "data.tsv")
    with pytest.raises(DataError, match=r"out: already holds a NeMo dataset \(text_train.txt, .*give --overwrite"):
        convert_file(new, out, split="train")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    # No old label (B-Y) and no old split (dev) survives beside the new train split.
    convert_file(new, out, split="train", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["label_ids.csv", "labels_train.txt", "text_train.txt"]
    assert (out / "label_ids.csv").read_text() == "O\nB-X"
    assert (out / "text_train.txt").read_text() == "a b\n"


def test_bad_file_leaves_no_partial_output(tmp_path: Path) -> None:
    src = tmp_path / "src"
    conll(src, "a\tB-X\n", "train.tsv")
    conll(src, "a\tB-X\nb\tNOPE\n", "test.tsv")
    out = tmp_path / "out"
    write_bytes(out / "text_train.txt", b"previous\n")
    with pytest.raises(DataError, match="test.tsv:2"):
        convert_corpus_dir(src, out)
    assert sorted(p.name for p in out.iterdir()) == ["text_train.txt"]  # no temp files left behind
    assert (out / "text_train.txt").read_text() == "previous\n"


def test_refuses_to_overwrite_an_input(tmp_path: Path) -> None:
    source = conll(tmp_path, "a\tB-X\n", "labels_train.txt")
    with pytest.raises(DataError, match="would overwrite input"):
        convert_file(source, tmp_path, split="train")
    assert source.read_text() == "a\tB-X\n"
    assert not (tmp_path / "text_train.txt").exists()

    nemo = tmp_path / "nemo"
    write_nemo_dataset({"test": [Sentence(("a",), ("O",))]}, nemo)
    with pytest.raises(DataError, match="would overwrite input"):
        nemo_to_conll(nemo / "text_test.txt", nemo / "labels_test.txt", nemo / "labels_test.txt")
    assert (nemo / "labels_test.txt").read_text() == "O\n"


# --- reverse ---------------------------------------------------------------------------


def test_round_trip_nemo_to_conll_with_predictions(tmp_path: Path) -> None:
    source = conll(tmp_path, "Reye\tB-Disease\nsyndrome\tI-Disease\n\nok\tO\n.\tO\n", "test.tsv")
    out = tmp_path / "nemo"
    convert_file(source, out)
    write_bytes(out / "pred_test.txt", b"B-Disease O\nO B-Disease\n")
    assert nemo_to_conll(out / "text_test.txt", out / "labels_test.txt", tmp_path / "back.tsv") == 2
    assert (tmp_path / "back.tsv").read_text() == source.read_text() + "\n"
    nemo_to_conll(out / "text_test.txt", out / "labels_test.txt", tmp_path / "eval.tsv", out / "pred_test.txt")
    assert (tmp_path / "eval.tsv").read_text() == (
        "Reye\tB-Disease\tB-Disease\nsyndrome\tI-Disease\tO\n\nok\tO\tO\n.\tO\tB-Disease\n\n"
    )


def test_check_nemo_token_data_keeps_tags_in_the_label_set(tmp_path: Path) -> None:
    write_nemo_dataset({"train": [Sentence(("Reye", "syndrome"), ("B-Disease", "I-Disease"))]}, tmp_path)
    pairs = {"train_ds": ("text_train.txt", "labels_train.txt")}
    assert check_nemo_token_data(tmp_path, pairs) == {"train_ds": 1}
    not_in_set = r"labels_train.txt:1: tag 'I-Disease' \(word 2\) is not one of \['B-Disease', 'O'\]"
    with pytest.raises(DataError, match=not_in_set):
        check_nemo_token_data(tmp_path, pairs, labels=["O", "B-Disease"])


def test_label_count_mismatch_is_located(tmp_path: Path) -> None:
    text = write_bytes(tmp_path / "text_dev.txt", b"a b\nc\n")
    labels = write_bytes(tmp_path / "labels_dev.txt", b"O O\nO O\n")
    with pytest.raises(DataError, match=r"labels_dev.txt:2: 2 labels for 1 words"):
        read_nemo(text, labels)


# --- real data and CLI -----------------------------------------------------------------


def test_shared_conll_release_converts_with_exact_counts(tmp_path: Path) -> None:
    stats = convert_corpus_dir(CONLL_DIR, tmp_path)
    counts = {split: (s.sentences, s.mentions, s.repaired_starts) for split, s in stats.items()}
    assert counts == {"train": (5432, 5145, 0), "dev": (923, 787, 0), "test": (940, 960, 0)}
    assert len((tmp_path / "text_dev.txt").read_text().splitlines()) == 923
    pairs = {split: (f"text_{split}.txt", f"labels_{split}.txt") for split in ("train", "dev", "test")}
    assert check_nemo_token_data(tmp_path, pairs, train="train", labels=["O", "B-Disease", "I-Disease"]) == {
        "train": 5432, "dev": 923, "test": 940,
    }  # fmt: skip
    nemo_to_conll(tmp_path / "text_dev.txt", tmp_path / "labels_dev.txt", tmp_path / "dev.tsv")
    assert (tmp_path / "dev.tsv").read_bytes() == (CONLL_DIR / "devel.tsv").read_bytes()


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    script = REPO / "scripts" / "iob_to_nemo.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=60)


def test_script_reports_located_error_and_exits_2(tmp_path: Path) -> None:
    bad = conll(tmp_path, "a\tB-X\nb\tO\nc\tI-X\n", "train.tsv")
    result = run_script(str(bad), str(tmp_path / "out"), "--strict")
    assert result.returncode == 2
    assert f"{bad}:3: " in result.stderr
    assert not (tmp_path / "out").exists()


def test_script_prints_counts_and_repair_warning(tmp_path: Path) -> None:
    source = conll(tmp_path, "a\tB-X\nb\tO\nc\tI-X\n\nd\tO\n", "train.tsv")
    result = run_script(str(source), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "train: 2 sentences, 4 tokens, 2 mentions" in result.stdout
    assert "repaired 1 I- tags" in result.stderr


# --- documents -------------------------------------------------------------------------


def test_docstart_lines_name_documents_and_become_a_documents_file(tmp_path: Path) -> None:
    src = conll(tmp_path, "-DOCSTART-\tO\n\nCowden\tB-Disease\ndisease\tI-Disease\n\nCD\tB-Disease\n.\tO\n\n"
                          "-DOCSTART-\tO\n\nAPC\tO\n")
    sentences = read_conll(src)
    assert [s.document for s in sentences] == ["doc1", "doc1", "doc9"]  # the -DOCSTART- line numbers
    out = tmp_path / "out"
    write_nemo_dataset({"train": sentences}, out)
    assert (out / "docs_train.txt").read_text() == "doc1\ndoc1\ndoc9\n"
    back = read_nemo(out / "text_train.txt", out / "labels_train.txt", out / "docs_train.txt")
    assert back == [dataclasses.replace(s, lines=(n,) * len(s.words)) for n, s in enumerate(sentences, 1)]
    # Without -DOCSTART- lines nothing is known, and no documents file is written.
    write_nemo_dataset({"train": read_conll(conll(tmp_path, "APC\tO\n", "plain.tsv"))}, out, overwrite=True)
    assert not (out / "docs_train.txt").exists()


@pytest.mark.parametrize(("docs", "line", "reason"), [
    ("a\n", None, "1 lines, but .* has 2"),
    ("a\nb c\n", 2, "one document name"),
])  # fmt: skip
def test_bad_documents_file_is_located(tmp_path: Path, docs: str, line: int | None, reason: str) -> None:
    (tmp_path / "text.txt").write_text("Cowden disease\nCD .\n")
    (tmp_path / "labels.txt").write_text("B-Disease I-Disease\nB-Disease O\n")
    (tmp_path / "docs.txt").write_text(docs)
    with pytest.raises(DataError, match=reason) as error:
        check_nemo_token_data(tmp_path, {"train_ds": ("text.txt", "labels.txt", "docs.txt")})
    assert Path(error.value.path).name == "docs.txt" and error.value.line == line
