"""Original NCBI Disease corpus -> IOB2 sentences and CoNLL files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from conftest import NCBI_DIR

from bertlab.data.download import ORIGINAL_FILENAMES
from bertlab.data.iob import convert_corpus_dir, read_iob
from bertlab.data.ncbi_corpus import Abstract, Mention, read_corpus
from bertlab.data.ncbi_iob import (
    CONLL_RELEASE_COUNTS,
    conll_splits,
    corpus_to_iob,
    original_splits,
    sentence_spans,
    tokenize,
    with_documents,
    write_original_as_conll,
)
from bertlab.io import DataError

SHARED = NCBI_DIR

TITLE = "BRCA1-deficient breast cancer. A study."
BODY = "Breast cancer (BC) is common. 12 of 40 carriers had HNPCCs! St. Louis encephalitis is rare."


def corpus_file(tmp_path: Path, *abstracts: str) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(abstracts) + "\n")
    return path


def offset_abstract(pmid: str, title: str, body: str, mentions: list[tuple[str, str]]) -> str:
    """An abstract in release format with the given (mention text, type) found in order."""
    text, lines, cursor = f"{title} {body}", [f"{pmid}|t|{title}", f"{pmid}|a|{body}"], 0
    for mention, kind in mentions:
        start = text.index(mention, cursor)
        cursor = start + len(mention)
        lines.append(f"{pmid}\t{start}\t{cursor}\t{mention}\t{kind}\tD000001")
    return "\n".join(lines)


def tagged(sentences) -> list[list[tuple[str, str]]]:
    return [list(zip(s.words, s.tags)) for s in sentences]


def test_tokenizer_splits_punctuation_like_the_conll_release() -> None:
    text = "BRCA1-deficient (APC) 1.5% a_b"
    assert [text[s:e] for s, e in tokenize(text)] == [
        "BRCA1", "-", "deficient", "(", "APC", ")", "1", ".", "5", "%", "a", "_", "b",
    ]  # fmt: skip


def test_title_is_a_sentence_and_no_split_inside_a_mention() -> None:
    start = f"{TITLE} {BODY}".index("St. Louis")
    mention = Mention(start, start + 22, "St. Louis encephalitis", "SpecificDisease")
    abstract = Abstract("1", TITLE, BODY, [mention])
    assert [abstract.text[s:e] for s, e in sentence_spans(abstract)] == [
        TITLE,
        "Breast cancer (BC) is common.",
        " 12 of 40 carriers had HNPCCs!",
        " St. Louis encephalitis is rare.",
    ]
    without_mention = Abstract("1", TITLE, BODY)
    assert len(sentence_spans(without_mention)) == 5  # "St." ends a sentence, as documented


def test_corpus_to_iob_tags_mentions_and_splits_tokens_at_mention_edges(tmp_path: Path) -> None:
    mentions = [("breast cancer", "SpecificDisease"), ("Breast cancer", "SpecificDisease"), ("BC", "SpecificDisease"),
                ("HNPCC", "Modifier")]  # fmt: skip
    path = corpus_file(tmp_path, offset_abstract("1", TITLE, BODY, mentions))
    sentences, stats = corpus_to_iob(path)
    assert tagged(sentences)[0][:5] == [
        ("BRCA1", "O"), ("-", "O"), ("deficient", "O"), ("breast", "B-Disease"), ("cancer", "I-Disease"),
    ]  # fmt: skip
    assert tagged(sentences)[1] == [
        ("Breast", "B-Disease"), ("cancer", "I-Disease"), ("(", "O"), ("BC", "B-Disease"), (")", "O"),
        ("is", "O"), ("common", "O"), (".", "O"),
    ]  # fmt: skip
    assert tagged(sentences)[2][-3:] == [("HNPCC", "B-Disease"), ("s", "O"), ("!", "O")]
    assert (stats.abstracts, stats.sentences, stats.mentions, stats.split_tokens) == (1, 5, 4, 1)


def test_keep_types_uses_the_corpus_mention_types(tmp_path: Path) -> None:
    path = corpus_file(tmp_path, offset_abstract("1", TITLE, BODY, [("cancer", "DiseaseClass"), ("BC", "Modifier")]))
    sentences, _ = corpus_to_iob(path, keep_types=True)
    assert {tag for s in sentences for tag in s.tags} == {"O", "B-DiseaseClass", "B-Modifier"}


def test_inline_annotated_corpus_is_converted(tmp_path: Path) -> None:
    title = '7|t|Familial <category="SpecificDisease">ataxia</category>.'
    path = corpus_file(tmp_path, f'{title}\n7|a|No <category="Modifier">MJD</category>.')
    sentences, stats = corpus_to_iob(path)
    assert tagged(sentences) == [
        [("Familial", "O"), ("ataxia", "B-Disease"), (".", "O")],
        [("No", "O"), ("MJD", "B-Disease"), (".", "O")],
    ]
    assert stats.mentions == 2


def test_repeated_pmid_is_dropped_and_reported(tmp_path: Path) -> None:
    abstract = offset_abstract("5", "Ataxia.", "Ataxia again.", [("Ataxia", "SpecificDisease")])
    other = offset_abstract("6", "Gout.", "", [("Gout", "SpecificDisease")])
    sentences, stats = corpus_to_iob(corpus_file(tmp_path, abstract, other, abstract))
    assert stats.duplicate_pmids == ["5"]
    assert (stats.abstracts, stats.sentences, stats.mentions) == (2, 3, 2)


def test_overlapping_mentions_are_a_located_error(tmp_path: Path) -> None:
    path = corpus_file(tmp_path, "3|t|Breast cancer.\n3|a|x\n3\t0\t13\tBreast cancer\tA\tD1\n3\t7\t13\tcancer\tA\tD1")
    with pytest.raises(DataError, match=f"{path}:1: overlapping mentions"):
        corpus_to_iob(path)


def test_missing_original_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="NCBItrainset_corpus.txt"):
        original_splits(tmp_path)


def test_original_corpus_matches_the_conll_release(tmp_path: Path) -> None:
    stats = write_original_as_conll(SHARED / "original", tmp_path)
    for split, (_, release_mentions) in CONLL_RELEASE_COUNTS.items():
        assert abs(stats[split].mentions - release_mentions) <= 0.01 * release_mentions, split
    assert {split: s.mentions for split, s in stats.items()} == {"train": 5134, "dev": 787, "test": 960}
    assert stats["train"].duplicate_pmids == ["8528200"]
    assert stats["train"].split_tokens == 2  # 'disorde|r', 'complemen|t': offsets end inside a word
    # The written files read back as the same IOB2 data.
    converted = convert_corpus_dir(tmp_path, tmp_path / "nemo", strict=True)
    assert {split: (s.sentences, s.mentions) for split, s in converted.items()} == {
        split: (s.sentences, s.mentions) for split, s in stats.items()
    }
    # Same tokenization as the release: dev and test have the very same (word, tag) multiset.
    for split, release_name in (("dev", "devel.tsv"), ("test", "test.tsv")):
        ours, _ = read_iob(tmp_path / f"{split}.tsv")
        release, _ = read_iob(SHARED / "conll" / release_name)
        assert Counter(pair for s in ours for pair in zip(s.words, s.tags)) == Counter(
            pair for s in release for pair in zip(s.words, s.tags)
        )
    assert not any((tmp_path / name).exists() for name in ORIGINAL_FILENAMES.values())


def test_every_conll_release_sentence_is_named_by_its_abstract() -> None:
    from bertlab.data.download import CONLL_FILENAMES
    from bertlab.data.ncbi_corpus import read_corpus

    splits = conll_splits({split: SHARED / "conll" / name for split, name in CONLL_FILENAMES.items()},
                          {split: SHARED / "original" / name for split, name in ORIGINAL_FILENAMES.items()})
    for split, (sentences, _) in splits.items():
        documents = [s.document for s in sentences]
        starts = [name for index, name in enumerate(documents) if index == 0 or documents[index - 1] != name]
        assert len(starts) == len(set(starts)) == {"train": 593, "dev": 100, "test": 100}[split]
        abstracts = {a.pmid: a for a in read_corpus(SHARED / "original" / ORIGINAL_FILENAMES[split])}
        for name in set(documents):  # each document spells out its abstract, spaces aside
            text = "".join(w for s in sentences if s.document == name for w in s.words)
            assert text == "".join(abstracts[name.split("#")[0]].text.split()), name
        # The train release repeats an abstract: two documents.
        assert ("8528200#2" in starts) == (split == "train")


def test_a_sentence_of_no_abstract_is_a_located_error(tmp_path: Path) -> None:
    abstract = offset_abstract("1", TITLE, BODY, [("Breast cancer", "SpecificDisease")])
    sentences, _ = corpus_to_iob(corpus_file(tmp_path, abstract))
    release = tmp_path / "release.tsv"
    lines = [f"{w}\t{t}" for s in sentences for w, t in [*zip(s.words, s.tags), ("", "")]]
    release.write_text("\n".join(lines).replace("\n\t\n", "\n\n") + "\nStray\tO\n")
    conll_sentences, _ = read_iob(release)
    named = with_documents(conll_sentences[:-1], read_corpus(corpus_file(tmp_path, abstract)), release)
    assert {s.document for s in named} == {"1"}
    with pytest.raises(DataError, match="does not start any abstract") as error:
        with_documents(conll_sentences, read_corpus(corpus_file(tmp_path, abstract)), release)
    assert error.value.line == len(lines) + 1
