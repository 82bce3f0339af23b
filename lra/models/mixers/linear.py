"""The FNet paper's "Linear" baseline (Lee-Thorp et al. 2021): two learned dense matrices, y = W_seq x W_hid."""

from __future__ import annotations

import math

import torch
from torch import nn

from lra.models.mixers.base import Mixer
from lra.models.mixers.registry import register


@register("linear")
class LinearMixer(Mixer):
    """Mixes tokens with a learned [max_len, max_len] matrix (its top-left L x L block for a length-L input) and
    hidden units with a learned [D, D] matrix.

    It cannot use the mask: the sequence matrix mixes padded positions in like tokens, by design (as FNet's Fourier
    mixing). The encoder's `zero_pad` switch zeroes them first; either way every task pads to its fixed `max_len`,
    so an example's output does not depend on the rest of its batch. Parameters: max_len^2 + D^2 (Path-X's
    16384^2 sequence matrix alone is 268M).
    """

    uses_mask = False
    uses_heads = False

    def __init__(self, d_model: int, n_heads: int, max_len: int, dropout: float, **base) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        # Variance-preserving init: each output is a sum over max_len (or D) inputs.
        self.seq = nn.Parameter(torch.randn(max_len, max_len) / math.sqrt(max_len))
        self.hidden = nn.Parameter(torch.randn(d_model, d_model) / math.sqrt(d_model))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        return self.seq[:n, :n].to(x.dtype) @ (x @ self.hidden.to(x.dtype))
