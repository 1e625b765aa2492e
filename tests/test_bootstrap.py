"""The paired bootstrap's per-item counts rescore runs exactly as the task metrics do, and
its resamples are paired."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bertlab.bootstrap import f1_from_counts, item_counts, paired_bootstrap
from bertlab.metrics import classification_scores, entity_scores

TAGS = ["O", "B-Disease", "I-Disease", "B-Gene", "I-Gene"]


@pytest.mark.parametrize("seed", range(10))
def test_counts_rescore_macro_f1_as_sklearn(seed):
    rng = random.Random(seed)
    gold = [rng.randrange(3) for _ in range(rng.randint(1, 40))]
    pred = [rng.choice([g, rng.randrange(3)]) for g in gold]
    expected = classification_scores(gold, pred, ["cancer", "neurological disorder", "other"])["macro_f1"]
    assert f1_from_counts(item_counts("tc", gold, pred).sum(axis=0)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_counts_rescore_entity_f1_as_seqeval_strict(seed):
    """Ill-formed predictions (an I- with no B-) and a second entity type included."""
    rng = random.Random(seed)
    gold = [[rng.choice(TAGS) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 15))]
    gold = [[tag if not tag.startswith("I-") or i and sentence[i - 1][2:] == tag[2:] else "B-" + tag[2:]
             for i, tag in enumerate(sentence)] for sentence in gold]
    pred = [[rng.choice([tag, rng.choice(TAGS)]) for tag in sentence] for sentence in gold]
    expected = entity_scores(gold, pred)["f1"]
    assert f1_from_counts(item_counts("ner", gold, pred).sum(axis=0)) == pytest.approx(expected, abs=1e-12)


def test_perfect_predictions_count_no_false_positives():
    gold = [i % 3 for i in range(30)]
    assert np.all(item_counts("tc", gold, gold).sum(axis=0)[1::3] == 0)


def _tc_runs():
    gold = [i % 3 for i in range(100)]
    wrong_every_fourth = [(g + (i % 4 == 0)) % 3 for i, g in enumerate(gold)]
    wrong_every_eighth = [(g + (i % 8 == 0)) % 3 for i, g in enumerate(gold)]
    return gold, wrong_every_fourth, wrong_every_eighth


def test_equal_runs_lead_by_nothing_in_every_resample():
    gold, worse, _ = _tc_runs()
    result = paired_bootstrap([item_counts("tc", gold, worse)], [item_counts("tc", gold, worse)], 0.01,
                              resamples=500)
    assert result["lead"] == 0 and result["interval"] == [0, 0] and result["reaches_margin"] == 0


def test_resamples_are_paired():
    """Ours is theirs with half its errors fixed: on any draw of the items shared by both, ours
    cannot score lower (unpaired draws would often make it); the lead on the whole split is the
    difference of the two runs' scores."""
    gold, worse, better = _tc_runs()
    ours, theirs = item_counts("tc", gold, better), item_counts("tc", gold, worse)
    result = paired_bootstrap([ours], [theirs], 0.05, resamples=2000)
    expected = (classification_scores(gold, better, ["a", "b", "c"])["macro_f1"]
                - classification_scores(gold, worse, ["a", "b", "c"])["macro_f1"])
    assert result["lead"] == pytest.approx(expected)
    assert 0 < result["interval"][0] < expected < result["interval"][1]
    assert 0 < result["reaches_margin"] <= 1 and result["items"] == 100 and result["resamples"] == 2000


def test_lead_is_of_the_means_over_seeds():
    gold, worse, better = _tc_runs()
    perfect = item_counts("tc", gold, gold)
    result = paired_bootstrap([perfect, item_counts("tc", gold, worse)],
                              [item_counts("tc", gold, better)] * 2, 0.0, resamples=100)
    scores = [f1_from_counts(c.sum(axis=0)) for c in
              (perfect, item_counts("tc", gold, worse), item_counts("tc", gold, better))]
    assert result["lead"] == pytest.approx((scores[0] + scores[1]) / 2 - scores[2])


def test_runs_on_other_items_are_an_error():
    gold, worse, _ = _tc_runs()
    with pytest.raises(ValueError, match="same test items"):
        paired_bootstrap([item_counts("tc", gold, worse)], [item_counts("tc", gold[:50], worse[:50])], 0.01)
    with pytest.raises(ValueError, match="50 predictions for 100"):
        item_counts("tc", gold, worse[:50])
