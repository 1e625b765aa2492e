"""Padding-free encoder layers (``model.unpadded``) and the ``[CLS]``-only last layer: the padded
encoder's numbers, on the real tokens (or the first position) only."""

import copy

import pytest
import torch
from conftest import compose_config, tiny_ner_run
from transformers import BertConfig, BertModel

from bertlab.config import ConfigError, check_types
from bertlab.unpadded import (
    FirstTokenBertLayer,
    UnpaddedBertEncoder,
    apply_unpadded,
    set_first_token_only,
    set_unpadded,
    stock_layers,
)


def tiny_bert(dropout: float = 0.0, attention: str = "sdpa") -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                        attn_implementation=attention)
    return BertModel(config, add_pooling_layer=False)


def padded_batch(lengths=(10, 6, 2)) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(5, 64, (len(lengths), max(lengths)), generator=torch.Generator().manual_seed(1))
    mask = (torch.arange(max(lengths)) < torch.tensor(lengths)[:, None]).long()
    return ids, mask


@pytest.mark.parametrize("attention", ["sdpa", "eager"])  # eager: BertModel's mask is [batch, 1, 1, width]
def test_outputs_and_gradients_match_the_padded_encoder(attention):
    padded = tiny_bert(attention=attention).train()
    unpadded = copy.deepcopy(padded)
    set_unpadded(unpadded)
    assert type(unpadded.encoder) is UnpaddedBertEncoder
    ids, mask = padded_batch()
    real = mask.bool()
    outputs = []
    for model in (padded, unpadded):
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        (hidden[real] ** 2).mean().backward()  # the heads' losses read real tokens only
        outputs.append(hidden)
    torch.testing.assert_close(outputs[1][real], outputs[0][real])
    assert outputs[1][~real].abs().max() == 0  # padding comes out as zeros
    for (name, expected), actual in zip(padded.named_parameters(), unpadded.parameters()):
        torch.testing.assert_close(actual.grad, expected.grad, msg=name)


def test_dropout_follows_the_training_mode():
    model = tiny_bert(dropout=0.3)
    set_unpadded(model)
    ids, mask = padded_batch()
    real = mask.bool()
    model.train()
    first, second = (model(input_ids=ids, attention_mask=mask).last_hidden_state[real] for _ in range(2))
    assert not torch.allclose(first, second)
    model.eval()
    first, second = (model(input_ids=ids, attention_mask=mask).last_hidden_state[real] for _ in range(2))
    torch.testing.assert_close(first, second)


@pytest.mark.parametrize("lengths", [(10, 10, 10), (10, 6, 2)])
def test_what_it_does_not_cover_falls_back_to_the_padded_forward(lengths):
    padded = tiny_bert().eval()
    unpadded = copy.deepcopy(padded)
    set_unpadded(unpadded)
    ids, mask = padded_batch(lengths)  # no padding at all: BertModel passes no mask
    expected = padded(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    actual = unpadded(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    for layer_expected, layer_actual in zip(expected, actual):
        torch.testing.assert_close(layer_actual, layer_expected)  # padding positions included


def test_a_bf16_autocast_forward_stays_close():
    padded = tiny_bert().eval()
    unpadded = copy.deepcopy(padded)
    set_unpadded(unpadded)
    ids, mask = padded_batch()
    real = mask.bool()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = padded(input_ids=ids, attention_mask=mask).last_hidden_state[real].float()
        actual = unpadded(input_ids=ids, attention_mask=mask).last_hidden_state[real].float()
    torch.testing.assert_close(actual, expected, atol=0.05, rtol=0.05)


def test_switching_back_and_refusing_what_is_not_bert():
    model = tiny_bert()
    set_unpadded(model)
    set_unpadded(model, False)
    assert type(model.encoder) is not UnpaddedBertEncoder
    set_unpadded(torch.nn.Linear(2, 2), False)  # nothing to switch off
    with pytest.raises(ConfigError, match="model.unpadded=true needs a Hugging Face BERT encoder; Linear"):
        set_unpadded(torch.nn.Linear(2, 2))


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.unpadded=true", "model.compile=true"], "model.unpadded=true with model.compile=true"),
    (["model.unpadded=yes"], "model.unpadded: expected true or false, got 'yes'"),
    (["model.attention=flash"], "model.attention: expected one of sdpa, eager, got 'flash'"),
    (["model.compile=true", "model.compile_mode=fast"], "model.compile_mode: expected one of default, reduce-overhead"),
    (["model.compile_mode=reduce-overhead"], "model.compile_mode is set but model.compile is false"),
])
def test_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_types(compose_config("train_ner", overrides))


def test_a_run_trains_saves_and_restores_unpadded(tiny_ner, tmp_path):
    from bertlab.predict import Predictor

    run = tiny_ner_run(tiny_ner, tmp_path, ["model.unpadded=true"])
    assert "entity_f1" in run.metrics
    predictor = Predictor.load(run.nemo_path, device="cpu")
    assert type(predictor.model.bert_model.encoder) is UnpaddedBertEncoder  # the switch travels in the .nemo
    sentences = [line.split() for line in (tiny_ner / "text_test.txt").read_text().splitlines()[:20]]
    sequences = [[predictor._cls, *(i for ids in predictor._word_ids(words) for i in ids), predictor._sep]
                 for words in sentences]
    assert len({len(sequence) for sequence in sequences}) > 1  # batches with padding
    unpadded = predictor._logits(sequences)
    set_unpadded(predictor.model.bert_model, False)
    padded = predictor._logits(sequences)
    for actual, expected in zip(unpadded, padded):
        torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("setting", "on_cuda", "compiled", "expected"), [
    (None, False, False, True),   # the default: on for the CPU, where the speed benchmark shows it wins
    (None, True, False, False),   # off on a GPU: a host-device sync per forward, not measured there
    (None, False, True, False),   # off under torch.compile: every token count would be a new shape
    (True, True, False, True),
    (False, False, False, False),
])
def test_the_default_is_on_for_the_cpu_only(setting, on_cuda, compiled, expected):
    model = tiny_bert()
    assert apply_unpadded(model, setting, on_cuda, compiled) is expected
    assert (type(model.encoder) is UnpaddedBertEncoder) is expected
    assert apply_unpadded(torch.nn.Linear(2, 2), None, on_cuda, compiled) is False  # not a BERT: left alone


def test_the_configs_default_is_null_and_a_cpu_run_uses_it(ner_run):
    from bertlab.predict import Predictor

    assert compose_config("train_ner").model.unpadded is None
    assert compose_config("train_tc", ["model.dataset.num_classes=3"]).model.unpadded is None
    assert type(Predictor.load(ner_run.nemo_path, device="cpu").model.bert_model.encoder) is UnpaddedBertEncoder


def test_the_prediction_benchmark_times_nemo_with_its_own_padded_encoder():
    from types import SimpleNamespace

    from bertlab.benchmark import _stock

    model = SimpleNamespace(bert_model=tiny_bert())
    set_unpadded(model.bert_model)
    set_first_token_only(model.bert_model)
    seen = _stock(model, lambda: (type(model.bert_model.encoder), type(model.bert_model.encoder.layer[-1])))()
    assert seen[0] is not UnpaddedBertEncoder  # NeMo's inference ran as stock NeMo runs it
    assert seen[1] is not FirstTokenBertLayer
    assert type(model.bert_model.encoder) is UnpaddedBertEncoder  # and bertlab's layers are back afterwards
    assert type(model.bert_model.encoder.layer[-1]) is FirstTokenBertLayer


@pytest.mark.parametrize("unpadded", [False, True])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_the_first_token_layer_gives_the_full_encoders_cls_state_and_gradients(attention, unpadded):
    full = tiny_bert(attention=attention).train()
    first_only = copy.deepcopy(full)
    set_unpadded(first_only, unpadded)
    assert set_first_token_only(first_only) is True
    assert type(first_only.encoder.layer[-1]) is FirstTokenBertLayer
    ids, mask = padded_batch()
    outputs = []
    for model in (full, first_only):
        cls = model(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
        (cls ** 2).mean().backward()  # a [CLS] head's loss
        outputs.append(cls)
    assert first_only(input_ids=ids, attention_mask=mask).last_hidden_state.shape == (3, 1, 32)
    torch.testing.assert_close(outputs[1], outputs[0])
    for (name, expected), actual in zip(full.named_parameters(), first_only.parameters()):
        if expected.grad is None:  # the last layer's key bias: softmax is shift-invariant
            assert actual.grad is None or actual.grad.abs().max() < 1e-6, name
        else:
            torch.testing.assert_close(actual.grad, expected.grad, msg=name)


def test_the_first_token_layer_keeps_dropout_and_falls_back_where_it_must():
    model = tiny_bert(dropout=0.3)
    set_first_token_only(model)
    ids, mask = padded_batch()
    model.train()
    assert not torch.allclose(*(model(input_ids=ids, attention_mask=mask).last_hidden_state for _ in range(2)))
    model.eval()
    full = copy.deepcopy(model)
    set_first_token_only(full, False)
    expected = full(input_ids=ids, attention_mask=mask).last_hidden_state[:, :1]
    torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).last_hidden_state, expected)
    fallback = model(input_ids=ids, attention_mask=mask, output_attentions=True)  # needs the full layer
    torch.testing.assert_close(fallback.last_hidden_state, expected)
    assert set_first_token_only(torch.nn.Linear(2, 2)) is False  # not a BERT: left alone
    with stock_layers(model):
        assert type(model.encoder.layer[-1]) is not FirstTokenBertLayer
    assert type(model.encoder.layer[-1]) is FirstTokenBertLayer


def test_a_cls_classifier_restores_with_the_first_token_layer(tc_run):
    from bertlab.predict import Predictor

    model = Predictor.load(tc_run.nemo_path, device="cpu").model
    assert type(model.bert_model.encoder.layer[-1]) is FirstTokenBertLayer  # mean pooling: tests/test_train_tc.py
