"""Weight initialisation schemes, selected by `model.init`.

`release` is what the LRA release code initialised (its Dense layers: xavier-uniform kernels, biases drawn from
N(0, 1e-6); the classifier heads and Sinkhorn's sort-net logits: flax's `nn.Dense` defaults, lecun-normal kernels and
zero biases; docs/reference.md#init): it changes where training starts, so a reproduction of the published
numbers uses it. `torch` keeps PyTorch's defaults. Token embeddings are N(0, 1) under both, as in the release.
`small_embed` is what the Nystromformer LRA code and the ports built on it initialised: PyTorch's dense defaults,
token embeddings N(0, 0.02) (learned positions are N(0, 0.02) under every scheme; docs/reference.md#small-protocols).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.classifier import Classifier
from lra.models.mixers.base import HeadedMixer, Mixer

INITS = ("torch", "release", "small_embed")


def initialise(module: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise every dense layer of `module` in place by `scheme`; returns the module."""
    if scheme not in INITS:
        raise LRAError(f"model.init={scheme!r} is not an initialisation; use one of: {', '.join(INITS)}")
    if scheme == "release":
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                if layer.bias is not None:
                    nn.init.normal_(layer.bias, std=1e-6)
        # The release has one Dense per q, k, v: each part of the fused projection gets its own fan-out.
        for layer in module.modules():
            if isinstance(layer, HeadedMixer):
                for part in layer.qkv.weight.data.chunk(len(layer.roles), dim=0):
                    nn.init.xavier_uniform_(part)
        for dense in flax_dense_layers(module):
            lecun_normal_(dense.weight)
            if dense.bias is not None:
                nn.init.zeros_(dense.bias)
    if scheme == "small_embed":
        for layer in module.modules():
            if isinstance(layer, nn.Embedding):
                nn.init.normal_(layer.weight, std=0.02)
    return module


def lecun_normal_(weight: torch.Tensor) -> None:
    """flax's `lecun_normal()`: a normal truncated at 2 standard deviations, scaled so that the variance is 1 / fan_in
    (0.8796... is the standard deviation of a unit normal truncated to [-2, 2])."""
    std = math.sqrt(1.0 / weight.shape[1]) / 0.87962566103423978
    with torch.no_grad():
        nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def flax_dense_layers(module: nn.Module) -> list[nn.Linear]:
    """The dense layers the release built with flax's nn.Dense defaults: every classifier head's (lra.models.classifier)
    and those a mixer names in `flax_dense`."""
    layers: list[nn.Linear] = []
    for sub in module.modules():
        if isinstance(sub, Mixer):
            layers += [getattr(sub, name) for name in sub.flax_dense]
        if isinstance(sub, Classifier):
            layers += [layer for layer in sub.head if isinstance(layer, nn.Linear)]
    return layers
