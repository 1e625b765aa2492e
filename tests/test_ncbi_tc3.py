"""Tests for the NCBI_tc-3 text-classification builder."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest
from conftest import NCBI_DIR

from bertlab.data.download import ORIGINAL_FILENAMES
from bertlab.data.ncbi_corpus import Abstract, Mention, read_corpus, unique_by_pmid
from bertlab.data.ncbi_tc3 import (
    CANCER,
    CLASS_NAMES,
    NEURO,
    OTHER,
    build_tc3,
    format_class_counts,
    label_abstract,
    mention_category,
    tsv_sentence,
)
from bertlab.io import DataError

ORIGINAL_DIR = NCBI_DIR / "original"
UNIQUE_ABSTRACTS = {"train": 592, "dev": 100, "test": 100}  # train: PMID 8528200 is in the file twice


def make_abstract(*mentions: tuple[str, str], pmid: str = "1") -> Abstract:
    """An abstract whose text is its mention texts in order, each annotated with its concept id."""
    title, parts, annotated, offset = "Title.", [], [], len("Title.") + 1
    for text, concept in mentions:
        annotated.append(Mention(offset, offset + len(text), text, "SpecificDisease", (concept,)))
        parts.append(text)
        offset += len(text) + 1
    return Abstract(pmid=pmid, title=title, abstract=" ".join(parts), mentions=annotated)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("breast cancer", CANCER),
        ("Renal cell carcinomas", CANCER),
        ("Wilms tumour", CANCER),
        ("malignant melanoma", CANCER),
        ("neuroblastoma", CANCER),  # cancer keywords are tried first
        ("osteomata", CANCER),
        ("Li-Fraumeni syndrome", CANCER),
        ("familial adenomatous polyposis", CANCER),
        ("glaucoma", OTHER),
        ("subdural hematoma", OTHER),
        ("coma", OTHER),
        ("nonneoplastic", OTHER),
        ("myotonic dystrophy", NEURO),
        ("Huntington disease", NEURO),
        ("spinocerebellar ataxia type 3", NEURO),
        ("mental retardation", NEURO),
        ("Tay-Sachs disease", NEURO),
        ("hypertrophic cardiomyopathy", OTHER),
        ("deficiency of beta-glucocerebrosidase", OTHER),
        ("Neisseria meningitidis", OTHER),
        ("G6PD deficiency", OTHER),
        ("deafness", OTHER),
    ],
)
def test_mention_category(text: str, expected: int) -> None:
    assert mention_category(text) == expected


def test_cancer_only_abstract_is_cancer() -> None:
    assert label_abstract(make_abstract(("breast cancer", "D1"), ("ovarian cancer", "D2"))) == CANCER


def test_neuro_only_abstract_is_neurological() -> None:
    assert label_abstract(make_abstract(("Huntington disease", "D3"), ("G6PD deficiency", "D9"))) == NEURO


def test_abstract_without_cancer_or_neuro_mentions_is_other() -> None:
    assert label_abstract(make_abstract(("G6PD deficiency", "D9"), ("glaucoma", "D8"))) == OTHER
    assert label_abstract(make_abstract()) == OTHER


def test_majority_category_wins() -> None:
    abstract = make_abstract(("melanoma", "D1"), ("epilepsy", "D4"), ("seizures", "D5"))
    assert label_abstract(abstract) == NEURO


@pytest.mark.parametrize(
    ("mentions", "expected"),
    [
        ((("melanoma", "D1"), ("epilepsy", "D4")), CANCER),
        ((("epilepsy", "D4"), ("melanoma", "D1")), NEURO),
    ],
)
def test_tie_goes_to_the_earlier_mention(mentions: tuple, expected: int) -> None:
    abstract = make_abstract(*mentions)
    abstract.mentions.reverse()  # the text position decides, not the annotation order
    assert label_abstract(abstract) == expected


def test_abbreviation_counts_through_its_concept_id() -> None:
    abstract = make_abstract(
        ("breast cancer", "D1"), ("ovarian cancer", "D2"),
        ("myotonic dystrophy", "D9008"), ("DM", "D9008"), ("DM", "D9008"),
    )
    assert mention_category("DM") == OTHER
    assert label_abstract(abstract) == NEURO


def test_tsv_sentence_puts_the_abstract_on_one_line() -> None:
    abstract = Abstract(pmid="1", title="A\ttitle.", abstract='Line one\r\nline "two"\n')
    assert tsv_sentence(abstract) == 'A title. Line one line "two"'


def test_repeated_pmid_is_kept_once_and_reported() -> None:
    first, repeat, other = make_abstract(("cancer", "D1")), make_abstract(("cancer", "D1")), make_abstract(pmid="2")
    kept, repeated = unique_by_pmid([first, repeat, other], "corpus.txt")
    assert kept == [first, other]
    assert repeated == ["1"]


def test_repeated_pmid_with_different_content_is_an_error() -> None:
    first, changed = make_abstract(("cancer", "D1")), make_abstract(("glioma", "D1"))
    changed.line = 7
    with pytest.raises(DataError, match=r"^corpus.txt:7: PMID 1 repeats"):
        unique_by_pmid([first, changed], "corpus.txt")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Counter]]:
    out_dir = tmp_path_factory.mktemp("ncbi_tc3")
    return out_dir, build_tc3(ORIGINAL_DIR, out_dir)


def test_build_counts_every_unique_abstract_once(built: tuple[Path, dict[str, Counter]]) -> None:
    _, counts = built
    assert {split: sum(c.values()) for split, c in counts.items()} == UNIQUE_ABSTRACTS
    assert all(counts["train"][label] > 0 for label in (CANCER, NEURO, OTHER))


def test_build_writes_header_then_raw_sentence_tab_label(built: tuple[Path, dict[str, Counter]]) -> None:
    out_dir, counts = built
    for split, filename in ORIGINAL_FILENAMES.items():
        lines = (out_dir / f"{split}.tsv").read_text(encoding="utf-8").split("\n")
        assert lines[0] == "sentence\tlabel"
        assert lines[-1] == ""  # every row ends with a newline, no trailing blank row
        rows = [line.split("\t") for line in lines[1:-1]]
        assert all(len(row) == 2 for row in rows)
        assert Counter(int(label) for _, label in rows) == counts[split]
        abstracts, _ = unique_by_pmid(read_corpus(ORIGINAL_DIR / filename), filename)
        # Exactly the corpus text: no quoting or escaping added around text that contains quotes.
        assert [sentence for sentence, _ in rows] == [tsv_sentence(a) for a in abstracts]
    assert any('"' in line for line in (out_dir / "train.tsv").read_text(encoding="utf-8").splitlines())


def test_build_logs_the_repeated_pmid(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bertlab.data.ncbi_tc3"):
        build_tc3(ORIGINAL_DIR, tmp_path)
    assert "8528200" in caplog.text


def test_build_with_a_missing_source_file_names_it_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "NCBItrainset_corpus.txt").symlink_to(ORIGINAL_DIR / "NCBItrainset_corpus.txt")
    with pytest.raises(DataError, match="NCBIdevelopset_corpus.txt: file not found"):
        build_tc3(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_format_class_counts_names_classes_and_totals() -> None:
    table = format_class_counts({"train": Counter({0: 3, 2: 1}), "dev": Counter({1: 2})})
    lines = table.splitlines()
    assert lines[0].split() == ["class", "train", "dev"]
    for label, name in enumerate(CLASS_NAMES):
        assert lines[1 + label].startswith(f"{label} {name}")
    assert lines[1].split()[-2:] == ["3", "0"]
    assert lines[-1].split() == ["total", "4", "2"]
