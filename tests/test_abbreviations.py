"""Abbreviations defined in a document, tagged wherever they recur (bertlab.abbreviations)."""

from __future__ import annotations

import pytest

from bertlab.abbreviations import abbreviates, definitions, names_an_enzyme, propagate_abbreviations

WORDS = "Cowden disease ( CD ; MIM 158350 ) is rare . PTEN mutations in 30 of 37 CD families , not in CDs .".split()
TAGS = ["B-Disease", "I-Disease"] + ["O"] * (len(WORDS) - 2)


def tagged(words, tags) -> list[str]:
    from seqeval.metrics.sequence_labeling import get_entities

    return [" ".join(words[start:last + 1]) for _, start, last in get_entities(list(tags))]


def test_a_short_form_defined_after_an_entity_is_tagged_wherever_it_recurs() -> None:
    assert definitions(WORDS, TAGS) == {("CD",): "Disease"}
    # Both CDs, in the definition and later; "CDs" is another word.
    assert tagged(WORDS, propagate_abbreviations(WORDS, TAGS)) == ["Cowden disease", "CD", "CD"]


@pytest.mark.parametrize(("short", "long", "expected"), [
    ("CD", "Cowden disease", True),
    ("T - PLL", "T - cell prolymphocytic leukaemia", True),
    ("SCA1", "spinocerebellar ataxia type 1", True),
    ("DMD", "Duchenne muscular dystrophy", True),
    ("p53", "breast cancer", False),
    ("BC", "cancer of the breast", False),   # the letters out of order
    ("AS", "Angelman syndrome and", True),
    ("XS", "Angelman syndrome", False),      # the first letter must start a word
])  # fmt: skip
def test_the_schwartz_hearst_letter_match(short: str, long: str, expected: bool) -> None:
    assert abbreviates(short.split(), long.split()) is expected


def test_nothing_changes_without_a_tagged_long_form_or_over_a_tagged_word() -> None:
    untagged = ["O"] * len(WORDS)
    assert propagate_abbreviations(WORDS, untagged) == untagged
    # A later "CD" the model already tagged (here as the start of a longer entity) is kept as it is.
    words = "Cowden disease ( CD ) . CD syndrome".split()
    tags = ["B-Disease", "I-Disease", "O", "O", "O", "O", "B-Disease", "I-Disease"]
    assert propagate_abbreviations(words, tags) == ["B-Disease", "I-Disease", "O", "B-Disease", "O", "O",
                                                    "B-Disease", "I-Disease"]
    # A parenthesis that is no short form: too long, or no capital letter.
    for inside in ("an autosomal dominant disorder of the skin", "rare"):
        words = f"Cowden disease ( {inside} ) .".split()
        tags = ["B-Disease", "I-Disease"] + ["O"] * (len(words) - 2)
        assert propagate_abbreviations(words, tags) == tags


@pytest.mark.parametrize(("long", "expected"), [
    ("deficiency of aspartoacylase", True),
    ("deficient arylsulfatase A", True),            # a trailing letter is no head
    ("coproporphyrinogen III oxidase", True),
    ("Huntington disease", False),                  # -ase, but a disease
    ("metachromatic leukodystrophy", False),
    ("glucose - 6 - phosphate dehydrogenase deficiency", False),  # the head is the deficiency
])  # fmt: skip
def test_an_enzyme_head_is_recognised(long: str, expected: bool) -> None:
    assert names_an_enzyme(long.split()) is expected


def test_an_enzyme_long_form_defines_no_disease_short_form() -> None:
    """The model took the enzyme into the entity; its short form names the gene, so the later
    ``ARSA gene`` stays untagged, while the disease's own short form still spreads."""
    words = ("deficient arylsulfatase A ( ARSA ) causes metachromatic leukodystrophy ( MLD ) . "
             "The ARSA gene is mutated in MLD .").split()
    tags = ["O"] * len(words)
    tags[0:3] = ["B-Disease", "I-Disease", "I-Disease"]
    tags[7:9] = ["B-Disease", "I-Disease"]
    assert definitions(words, tags) == {("MLD",): "Disease"}
    assert tagged(words, propagate_abbreviations(words, tags)) == [
        "deficient arylsulfatase A", "metachromatic leukodystrophy", "MLD", "MLD"]


def test_the_predictor_propagates_within_each_document(ner_run, monkeypatch) -> None:
    """With the model's logits planted (Cowden disease tagged, nothing else), the short form is
    tagged in the sentences of its document only, and only when the model's config asks."""
    import torch

    from bertlab.predict import Predictor

    predictor = Predictor.load(ner_run.nemo_path)
    ids = {predictor.model.tokenizer.tokens_to_ids(predictor.model.tokenizer.text_to_tokens(w))[0]: label
           for w, label in (("cowden", "B-Disease"), ("disease", "I-Disease"))}
    label_ids = {name: index for index, name in predictor.model.id_to_label.items()}

    def planted(sequences):
        result = []
        for sequence in sequences:
            logits = torch.zeros(len(sequence), len(label_ids))
            for position, token in enumerate(sequence):
                logits[position, label_ids[ids.get(token, "O")]] = 1.0
            result.append(logits)
        return result

    monkeypatch.setattr(predictor, "_logits", planted)
    sentences = [WORDS[:10], WORDS[10:], ["37", "CD", "families"]]
    documents = ["a", "a", "b"]
    predictor.model.cfg.propagate_abbreviations = False  # the model's own tags (the default is the step)
    plain = predictor.tag(sentences, documents)
    assert [tagged(t.words, t.tags) for t in plain] == [["Cowden disease"], [], []]
    predictor.model.cfg.propagate_abbreviations = True
    assert predictor.propagates_abbreviations
    found = predictor.tag(sentences, documents)
    assert [tagged(t.words, t.tags) for t in found] == [["Cowden disease", "CD"], ["CD"], []]  # not in document b
    assert [[s.text for s in t.spans] for t in found][1] == ["CD"]
    # Without documents each input is its own document.
    assert [tagged(t.words, t.tags) for t in predictor.tag(sentences)] == [["Cowden disease", "CD"], [], []]
