"""Padding-free BERT layers (``model.unpadded``; default null: on for the CPU, off on a GPU).

A Hugging Face ``BertEncoder`` computes every position of a padded batch. Here each layer's
dense parts (the query, key and value projections, the attention output projection, the
feed-forward block and both LayerNorms: nearly all of the arithmetic at NCBI's lengths) run
on the real tokens only, gathered into one ``[tokens, hidden]`` matrix; only the attention
itself sees the padded ``[batch, heads, width, head_dim]`` layout, with the usual mask. The
parameters are the encoder's own, so checkpoints and ``.nemo`` files do not change, and the
outputs at real tokens equal the padded encoder's (padding positions come out as zeros).

transformers 4.51's ``BertModel`` has no variable-length (flash-attention-2) path, so the
attention is PyTorch's ``scaled_dot_product_attention`` over the padded layout, as with
``model.attention: sdpa``. Whatever this path does not cover (head masks, attention or
hidden-state outputs, cross-attention, caches, relative positions) falls back to the padded
forward.

On a GPU it stays off unless asked for: gathering the real tokens needs their count on the
host, one device sync per forward pass, and on an H100 it made NER epochs about 1.25x slower
(README, Speed). Under
``model.compile`` it stays off too: every batch's token count would be a new shape.

A classifier that reads ``[CLS]`` only needs one position out of the last layer:
``FirstTokenBertLayer`` (``set_first_token_only``) computes the last layer's query,
attention output and feed-forward block for position 0 alone, with keys and values from every
position, so the encoder returns ``[batch, 1, hidden]``. It is exact, padded or padding-free,
and saves about a sixth of a 6-layer encoder's work in training and prediction.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions
from transformers.models.bert.modeling_bert import BertEncoder, BertLayer


class UnpaddedBertEncoder(BertEncoder):
    """``BertEncoder`` whose layers compute the real tokens only (see the module docstring)."""

    def forward(self, hidden_states, attention_mask=None, head_mask=None, encoder_hidden_states=None,
                encoder_attention_mask=None, past_key_values=None, use_cache=None, output_attentions=False,
                output_hidden_states=False, return_dict=True):
        # BertModel passes head_mask as [None] * layers when there is none.
        head_masked = head_mask is not None and any(mask is not None for mask in head_mask)
        relative = getattr(self.config, "position_embedding_type", "absolute") != "absolute"
        fallback = (attention_mask is None or head_masked or encoder_hidden_states is not None
                    or past_key_values is not None or use_cache or output_attentions or output_hidden_states
                    or self.config.is_decoder or relative)
        if fallback:  # no padding to skip (mask None), or a feature this path does not cover
            return super().forward(hidden_states, attention_mask, head_mask, encoder_hidden_states,
                                   encoder_attention_mask, past_key_values, use_cache, output_attentions,
                                   output_hidden_states, return_dict)
        batch, width, hidden = hidden_states.shape
        # BertModel's extended mask, [batch, 1, 1 or width, width]: 0 where a key is attended,
        # the dtype's minimum where it is padding. Row 0 of every head holds the key mask.
        real = (attention_mask[:, 0, 0, :] == 0).reshape(-1)
        index = real.nonzero().squeeze(1)
        states = hidden_states.reshape(batch * width, hidden).index_select(0, index)
        layers = list(self.layer)
        first_token_only = type(layers[-1]) is FirstTokenBertLayer
        for layer in layers[:-1] if first_token_only else layers:
            states, attention_mask = _layer_forward(layer, states, index, attention_mask, batch, width)
        padded = states.new_zeros(batch * width, hidden).index_copy(0, index, states).view(batch, width, hidden)
        if first_token_only:
            padded = layers[-1](padded, attention_mask)[0]
        if not return_dict:
            return (padded,)
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=padded)


def _layer_forward(layer, states: torch.Tensor, index: torch.Tensor, mask: torch.Tensor, batch: int,
                   width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``BertLayer`` on ``[tokens, hidden]`` states: BertSelfAttention, BertSelfOutput,
    BertIntermediate and BertOutput, in HF's order, with HF's modules (dropouts included).
    Returns the new states and the mask in the attention's dtype, for the next layer."""
    attention = layer.attention.self
    heads, head_size = attention.num_attention_heads, attention.attention_head_size

    def to_heads(projected: torch.Tensor) -> torch.Tensor:  # [tokens, all_head] -> [batch, heads, width, head]
        full = projected.new_zeros(batch * width, projected.shape[-1]).index_copy(0, index, projected)
        return full.view(batch, width, heads, head_size).transpose(1, 2)

    query = to_heads(attention.query(states))
    mask = mask.to(query.dtype)  # fp32 from BertModel; autocast runs the projections in 16 bits
    context = torch.nn.functional.scaled_dot_product_attention(
        query, to_heads(attention.key(states)), to_heads(attention.value(states)), attn_mask=mask,
        dropout_p=attention.dropout.p if layer.training else 0.0)
    context = context.transpose(1, 2).reshape(batch * width, heads * head_size).index_select(0, index)
    attended = layer.attention.output(context, states)
    return layer.output(layer.intermediate(attended), attended), mask


def set_unpadded(encoder, enabled: bool = True) -> None:
    """Swap a Hugging Face ``BertModel``'s encoder to the padding-free class (or back), in
    place; both classes hold the same parameters."""
    layers = getattr(encoder, "encoder", None)
    if not isinstance(layers, BertEncoder):
        if enabled:
            from bertlab.config import ConfigError

            raise ConfigError(f"model.unpadded=true needs a Hugging Face BERT encoder; {type(encoder).__name__} "
                              "is not one")
        return
    layers.__class__ = UnpaddedBertEncoder if enabled else BertEncoder


def apply_unpadded(encoder, setting: bool | None, on_cuda: bool, compiled: bool = False) -> bool:
    """Apply ``model.unpadded`` to ``encoder``: true or false as given; null (the default) is on
    for a Hugging Face BERT on the CPU and off on a GPU or under ``model.compile`` (see the
    module docstring). Returns whether it is on."""
    if setting is None:
        setting = not on_cuda and not compiled and isinstance(getattr(encoder, "encoder", None), BertEncoder)
    set_unpadded(encoder, setting)
    return setting


class FirstTokenBertLayer(BertLayer):
    """A ``BertLayer`` that outputs position 0 only, ``[batch, 1, hidden]``: the query, the
    attention output and the feed-forward block run for ``[CLS]`` alone (see the module
    docstring). What it does not cover falls back to the full layer, cut to position 0."""

    def forward(self, hidden_states, attention_mask=None, head_mask=None, encoder_hidden_states=None,
                encoder_attention_mask=None, past_key_value=None, output_attentions=False):
        attention = self.attention.self
        if (head_mask is not None or encoder_hidden_states is not None or past_key_value is not None
                or output_attentions or self.is_decoder
                or getattr(attention, "position_embedding_type", "absolute") != "absolute"):
            outputs = super().forward(hidden_states, attention_mask, head_mask, encoder_hidden_states,
                                      encoder_attention_mask, past_key_value, output_attentions)
            return (outputs[0][:, :1], *outputs[1:])
        batch = hidden_states.shape[0]
        heads, head_size = attention.num_attention_heads, attention.attention_head_size

        def to_heads(projected: torch.Tensor) -> torch.Tensor:  # [batch, width, all] -> [batch, heads, width, head]
            return projected.view(batch, -1, heads, head_size).transpose(1, 2)

        first = hidden_states[:, :1]
        query = to_heads(attention.query(first))
        if attention_mask is not None:  # [batch, 1, 1 or width, width]: the query row of position 0
            attention_mask = attention_mask[:, :, :1].to(query.dtype)
        context = torch.nn.functional.scaled_dot_product_attention(
            query, to_heads(attention.key(hidden_states)), to_heads(attention.value(hidden_states)),
            attn_mask=attention_mask, dropout_p=attention.dropout.p if self.training else 0.0)
        attended = self.attention.output(context.transpose(1, 2).reshape(batch, 1, heads * head_size), first)
        return (self.feed_forward_chunk(attended),)


def _bert_layers(encoder):
    """A Hugging Face ``BertModel``'s layers, or None for any other encoder."""
    layers = getattr(encoder, "encoder", None)
    return layers.layer if isinstance(layers, BertEncoder) and len(layers.layer) else None


def set_first_token_only(encoder, enabled: bool = True) -> bool:
    """Make a Hugging Face ``BertModel``'s last layer a ``FirstTokenBertLayer`` (or a plain
    ``BertLayer`` again), in place; the parameters stay the same. Returns whether it is on:
    an encoder that is not a Hugging Face BERT is left as it is."""
    layers = _bert_layers(encoder)
    if layers is None:
        return False
    layers[-1].__class__ = FirstTokenBertLayer if enabled else BertLayer
    return enabled


@contextmanager
def stock_layers(encoder):
    """The encoder as NeMo builds it (padded, every position out of the last layer) inside
    the block, and bertlab's layers again after it: for timing NeMo's own inference."""
    unpadded = type(getattr(encoder, "encoder", None)) is UnpaddedBertEncoder
    layers = _bert_layers(encoder)
    first_token_only = layers is not None and type(layers[-1]) is FirstTokenBertLayer
    set_unpadded(encoder, False)
    set_first_token_only(encoder, False)
    try:
        yield encoder
    finally:
        set_unpadded(encoder, unpadded)
        set_first_token_only(encoder, first_token_only)
