"""A paired bootstrap over the test items: how far a test split of this size lets the lead of
one pipeline's mean score over another's be read (Koehn 2004, Berg-Kirkpatrick et al. 2012).

Every resample draws the test items with replacement, the same draw for both pipelines
(paired: an abstract that is hard is hard for both), and rescores every run on it. The seeds
stay fixed; their noise is the quality report's standard error over the seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RESAMPLES = 10_000


def item_counts(task: str, gold: Sequence, pred: Sequence, num_classes: int = 3) -> np.ndarray:
    """Per test item, the counts its run's score sums over the split: TC, (tp, fp, fn) of each
    class (macro F1); NER, exact-match entities' (tp, fp, fn) (micro entity F1, IOB2 strict, as
    :func:`bertlab.metrics.entity_scores`). Shape: items x (3 x classes)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(pred)} predictions for {len(gold)} test items")
    if task == "tc":
        gold_ids, pred_ids = np.asarray(gold), np.asarray(pred)
        columns = []
        for label in range(num_classes):
            is_gold, is_pred = gold_ids == label, pred_ids == label
            columns += [is_gold & is_pred, ~is_gold & is_pred, is_gold & ~is_pred]
        return np.stack(columns, axis=1).astype(np.float64)
    from seqeval.scheme import IOB2, Entities

    gold_entities = Entities([list(s) for s in gold], IOB2).entities
    pred_entities = Entities([list(s) for s in pred], IOB2).entities
    rows = []
    for true, guess in zip(gold_entities, pred_entities):
        true, guess = {e.to_tuple() for e in true}, {e.to_tuple() for e in guess}
        rows.append((len(true & guess), len(guess - true), len(true - guess)))
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), 3)


def f1_from_counts(counts: np.ndarray) -> np.ndarray:
    """The score of summed counts (..., 3 x groups): the mean over groups of 2tp / (2tp + fp + fn),
    0 where a group has no item (sklearn's and seqeval's zero_division=0)."""
    tp, fp, fn = counts[..., 0::3], counts[..., 1::3], counts[..., 2::3]
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0).mean(axis=-1)


def paired_bootstrap(ours: Sequence[np.ndarray], theirs: Sequence[np.ndarray], margin: float,
                     resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """The lead of the mean over ``ours`` runs' scores over the mean of ``theirs``, each run
    given by its :func:`item_counts`: on the whole split, its 95% percentile interval over the
    resamples, and the share of resamples where it reaches ``margin``."""
    items = len(ours[0])
    if any(len(run) != items for run in (*ours, *theirs)):
        raise ValueError("every run must be scored on the same test items")
    draws = np.random.default_rng(seed).multinomial(items, np.full(items, 1 / items), size=resamples)

    def lead(weights: np.ndarray) -> np.ndarray:
        def mean(runs):
            return np.mean([f1_from_counts(weights @ run) for run in runs], axis=0)

        return mean(ours) - mean(theirs)

    leads = lead(draws.astype(np.float64))
    low, high = np.percentile(leads, [2.5, 97.5])
    return {"items": items, "resamples": resamples, "lead": float(lead(np.ones(items))),
            "interval": [float(low), float(high)], "reaches_margin": float(np.mean(leads >= margin))}
