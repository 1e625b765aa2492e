"""Long abstracts: the three ways of reading them, the same in training, validation and prediction."""

from __future__ import annotations

import pytest
from conftest import tc_config

from bertlab.config import ConfigError
from bertlab.long_text import fit_to_length, sentence_groups


def _ids(words):  # one "subtoken" per character: lengths are easy to reason about
    return [[ord(c) for c in word] for word in words]


WORDS = "Aa bb. Cc dd ee. Ff (gg hh.) Ii jj kk ll".split()


def test_sentence_groups_end_at_stops_before_closing_brackets():
    assert [list(r) for r in sentence_groups(WORDS)] == [[0, 1], [2, 3, 4], [5, 6, 7], [8, 9, 10, 11]]


def test_short_text_is_one_sequence_whatever_the_strategy():
    ids = _ids(WORDS)
    for strategy in ("head", "head_tail", "sentence_chunks"):
        assert fit_to_length(WORDS, ids, 100, strategy) == [[i for w in ids for i in w]]


def test_head_and_head_tail_keep_the_budget():
    flat = list(range(100))
    words, ids = ["w"] * 100, [[i] for i in flat]
    assert fit_to_length(words, ids, 40, "head") == [flat[:40]]
    assert fit_to_length(words, ids, 40, "head_tail") == [flat[:10] + flat[70:]]  # a quarter head, the rest tail


def test_sentence_chunks_pack_whole_sentences_and_lose_nothing():
    ids = _ids(WORDS)
    chunks = fit_to_length(WORDS, ids, 11, "sentence_chunks")
    assert [len(chunk) for chunk in chunks] == [5, 7, 9, 8]  # one sentence each: no two fit in 11
    assert [i for chunk in chunks for i in chunk] == [i for w in ids for i in w]
    long_sentence = ["x" * 5] * 6  # one 30-subtoken sentence: cut into budget-sized pieces
    assert [len(c) for c in fit_to_length(long_sentence, _ids(long_sentence), 12, "sentence_chunks")] == [12, 12, 6]


def test_unknown_strategy_is_a_config_error(tmp_path, tiny_tc3):
    from bertlab.train import train

    with pytest.raises(ConfigError, match="long_text"):
        train(tc_config(tiny_tc3, tmp_path, ["model.dataset.long_text=middle"]))


@pytest.mark.parametrize("strategy", ["head", "head_tail", "sentence_chunks"])
def test_validation_and_prediction_read_long_texts_alike(strategy, tc_run, tiny_tc3):
    """The model's validation path (rows of the training data, a text's chunks averaged) and
    Predictor.classify give every test text the same class."""
    import torch

    from bertlab.data.tsv import read_labeled_tsv
    from bertlab.predict import Predictor
    from bertlab.restore import restore_model

    model = restore_model(tc_run.nemo_path, map_location="cpu")
    model.cfg.dataset.long_text = strategy
    model.dataset_cfg = model.cfg.dataset
    test_cfg = model.cfg.test_ds.copy()
    test_cfg.file_path = str(tiny_tc3 / "test_nemo_format.tsv")
    loader = model._setup_dataloader_from_config(test_cfg)
    gold, pred = [], []
    model.eval()
    with torch.inference_mode():
        for batch in loader:
            _, logits = model.batch_loss(batch)
            batch_gold, batch_pred = model.decode(*model.step_outputs(batch, logits))
            gold.extend(batch_gold)
            pred.extend(batch_pred)
    if strategy == "sentence_chunks":
        assert len(pred) > len({text for text, _ in gold}) == 24  # texts over 62 subtokens gave several rows
    labels, predicted = model._texts_gold_pred(gold, pred)
    texts = [text for text, _ in read_labeled_tsv(tiny_tc3 / "test_nemo_format.tsv").rows]
    results = Predictor(model, device="cpu").classify(texts)
    assert [r.label for r in results] == predicted
    assert all(r.truncated == (strategy != "sentence_chunks" and r.subtokens > 62) for r in results)
    assert all((r.chunks > 1) == (strategy == "sentence_chunks" and r.subtokens > 62) for r in results)
