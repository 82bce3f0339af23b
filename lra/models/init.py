"""Weight initialisation schemes, selected by `model.init`.

`release` is what the LRA release code initialised (Flax Dense layers there: xavier-uniform kernels, biases drawn
from N(0, 1e-6); docs/reference.md#init): it changes where training starts, so a reproduction of the published
numbers uses it. `torch` keeps PyTorch's defaults. Token embeddings are N(0, 1) under both, as in the release.
`small_embed` is what the Nystromformer LRA code and the ports built on it initialised: PyTorch's dense defaults,
token embeddings N(0, 0.02) (learned positions are N(0, 0.02) under every scheme; docs/reference.md#small-protocols).
"""

from __future__ import annotations

from torch import nn

from lra.errors import LRAError
from lra.models.mixers.base import HeadedMixer

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
    if scheme == "small_embed":
        for layer in module.modules():
            if isinstance(layer, nn.Embedding):
                nn.init.normal_(layer.weight, std=0.02)
    return module
