"""Entity and class metrics on hand-checked cases."""

from __future__ import annotations

import pytest

from bertlab.metrics import classification_scores, entity_scores

GOLD = [["B-Disease", "I-Disease", "O", "B-Disease"]]  # two entities: tokens 0-1 and 3


def test_exact_match_is_perfect():
    scores = entity_scores(GOLD, GOLD)
    assert (scores["precision"], scores["recall"], scores["f1"], scores["support"]) == (1.0, 1.0, 1.0, 2)


def test_boundary_error_counts_as_a_miss_and_a_false_positive():
    pred = [["B-Disease", "O", "O", "B-Disease"]]  # first entity cut short
    scores = entity_scores(GOLD, pred)
    assert scores["precision"] == pytest.approx(1 / 2)
    assert scores["recall"] == pytest.approx(1 / 2)
    assert scores["f1"] == pytest.approx(1 / 2)


def test_type_error_is_wrong_for_both_types():
    gold = [["B-SpecificDisease", "O", "B-Modifier"]]
    pred = [["B-Modifier", "O", "B-Modifier"]]
    scores = entity_scores(gold, pred)
    assert scores["precision"] == pytest.approx(1 / 2) and scores["recall"] == pytest.approx(1 / 2)
    assert scores["per_type"]["SpecificDisease"]["recall"] == 0.0
    assert scores["per_type"]["Modifier"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3),
                                              "support": 1}


def test_i_start_is_not_an_entity_in_strict_iob2():
    pred = [["I-Disease", "I-Disease", "O", "B-Disease"]]  # conlleval would accept the first
    scores = entity_scores(GOLD, pred)
    assert scores["precision"] == 1.0 and scores["recall"] == pytest.approx(1 / 2)


def test_no_predictions_score_zero_not_an_error():
    scores = entity_scores(GOLD, [["O"] * 4])
    assert scores["f1"] == 0.0 and scores["recall"] == 0.0


def test_length_mismatch_is_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        entity_scores(GOLD, [["O"] * 3])


def test_classification_scores_per_named_class_and_macro():
    scores = classification_scores([0, 0, 1, 2], [0, 1, 1, 1], ["cancer", "neuro", "other"])
    assert scores["accuracy"] == 0.5
    assert scores["per_class"]["cancer"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3),
                                             "support": 2}
    assert scores["per_class"]["other"]["f1"] == 0.0
    neuro_f1 = 2 * (1 / 3) * 1.0 / (1 / 3 + 1.0)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + neuro_f1 + 0.0) / 3)
