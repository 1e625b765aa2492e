"""Optimizer parameter groups: layer-wise learning-rate decay (``model.layerwise_lr_decay``) and
weight decay for matrices only (``model.decay_norms_and_biases: false``).

With decay ``d`` < 1 and an encoder of ``L`` layers, the head trains at ``lr``, encoder layer
``l`` (1 = lowest) at ``lr * d ** (L + 1 - l)`` and the embeddings at ``lr * d ** (L + 1)``
(Clark et al. 2020, ELECTRA; Sun et al. 2019): the lower layers, which hold the most general
features, move least. The scheduler must scale each group from its own learning rate
(NeMo's ``PolynomialDecayAnnealing`` does; ``WarmupAnnealing`` gives every group the first
group's rate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing this module stays light: the config checks read FLATTENING_SCHEDULERS
    from torch import nn

# Schedulers that compute every group's rate from the first group's base rate.
FLATTENING_SCHEDULERS = ("WarmupAnnealing",)


def layerwise_param_groups(model: nn.Module, encoder: nn.Module, lr: float, decay: float) -> list[dict]:
    """``model``'s parameters in groups of one depth each, head first (``param_groups[0]`` is the
    base rate that training logs). ``encoder`` is the model's Hugging Face BERT."""
    layers = encoder.encoder.layer
    top = len(layers) + 1  # the head's depth
    depth_of = {id(p): 0 for p in encoder.embeddings.parameters()}
    for depth, layer in enumerate(layers, start=1):
        depth_of.update({id(p): depth for p in layer.parameters()})
    by_depth: dict[int, list[nn.Parameter]] = {}
    for param in model.parameters():
        by_depth.setdefault(depth_of.get(id(param), top), []).append(param)
    return [{"params": by_depth[depth], "lr": lr * decay ** (top - depth)} for depth in sorted(by_depth, reverse=True)]


def without_decay_on_vectors(groups: list[dict]) -> list[dict]:
    """Each group split in two: its matrices keep the optimizer's weight decay, its 1-D
    parameters (biases, LayerNorm scales and shifts) get none, as in Hugging Face's ``Trainer``.
    The order stays, so ``param_groups[0]`` still holds the first group's matrices."""
    split = []
    for group in groups:
        params = list(group["params"])
        matrices, vectors = [p for p in params if p.ndim >= 2], [p for p in params if p.ndim < 2]
        split += [{**group, "params": matrices}] if matrices else []
        split += [{**group, "params": vectors, "weight_decay": 0.0}] if vectors else []
    return split
