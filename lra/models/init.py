"""Weight initialisation schemes, selected by `model.init`.

`release` is what the LRA release code initialised (its Dense layers: xavier-uniform kernels, biases drawn from
N(0, 1e-6); the classifier heads and Sinkhorn's sort-net logits: flax's `nn.Dense` defaults, lecun-normal kernels and
zero biases; docs/reference.md#init): it changes where training starts, so a reproduction of the published
numbers uses it. `torch` keeps PyTorch's defaults. Token embeddings are N(0, 1) under both, as in the release.
`small_embed` is what the Nystromformer LRA code and the ports built on it initialised: PyTorch's dense defaults,
token embeddings N(0, 0.02) (learned positions are N(0, 0.02) under every scheme; docs/reference.md#small-protocols).
`fnet` is the f_net code's (FNet's own code, lra.models.fnet_block): every Dense kernel, bias and embedding N(0, 0.02),
the CLS vector too, except the layers a module names as built with flax's defaults (`flax_dense`: lecun-normal
kernel and zero bias; `flax_zero_bias`: zero bias).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.classifier import Classifier
from lra.models.mixers.base import HeadedMixer

INITS = ("torch", "release", "small_embed", "fnet")
FNET_STD = 0.02  # the f_net code's default_kernel_init and default_bias_init


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
    if scheme == "fnet":
        fnet_init(module)
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


def fnet_init(module: nn.Module) -> None:
    """`model.init=fnet` (see the module docstring)."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Embedding)):
                nn.init.normal_(layer.weight, std=FNET_STD)
            if isinstance(layer, nn.Linear) and layer.bias is not None:
                nn.init.normal_(layer.bias, std=FNET_STD)
            if isinstance(getattr(layer, "cls", None), nn.Parameter):  # a learned CLS: a word embedding row there
                nn.init.normal_(layer.cls, std=FNET_STD)
        for layer in declared_layers(module, "flax_dense"):
            lecun_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
        for layer in declared_layers(module, "flax_zero_bias"):
            nn.init.zeros_(layer.bias)


def declared_layers(module: nn.Module, attribute: str) -> list[nn.Linear]:
    """The dense layers that the modules inside `module` name in `attribute` (`flax_dense`, `flax_zero_bias`)."""
    return [getattr(sub, name) for sub in module.modules() for name in getattr(sub, attribute, ())]


def flax_dense_layers(module: nn.Module) -> list[nn.Linear]:
    """The dense layers the release built with flax's nn.Dense defaults: every classifier head's (lra.models.classifier)
    and those a module names in `flax_dense` (Sinkhorn's sort net, FNet's embedding projection)."""
    layers = declared_layers(module, "flax_dense")
    for sub in module.modules():
        if isinstance(sub, Classifier):
            layers += [layer for layer in sub.head if isinstance(layer, nn.Linear)]
    return layers
