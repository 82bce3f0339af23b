"""Linformer (Wang et al. 2020): keys and values projected along the sequence to a fixed length k."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lra.errors import LRAError
from lra.models.mixers.kernels import KernelMixer
from lra.models.mixers.registry import register


@register("linformer")
class LinformerMixer(KernelMixer):
    """softmax(Q (E K)^T / sqrt(d)) (E V) with one learned E [k, max_len] shared by keys, values and heads
    (the paper's layer-wise sharing, as in the LRA code), so attention costs O(L k).

    Padded keys and values are zeroed before the projection, so pads contribute nothing to E K and E V; a shorter
    input (L < max_len) uses the first L columns of E. k = min(proj_len, max_len). E starts as LRA's
    lecun-normal (std 1/sqrt(max_len)). `dropout` drops attention weights in training.
    """

    def __init__(self, d_model: int, n_heads: int, max_len: int, dropout: float, proj_len: int = 256, **base) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if proj_len < 1:
            raise LRAError(f"model.proj_len={proj_len} must be a positive projected length (the paper's k)")
        self.proj_len = min(proj_len, max_len)
        self.proj = nn.Parameter(torch.randn(self.proj_len, max_len) / math.sqrt(max_len))

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = q.shape[-2]
        if length > self.max_len:
            raise LRAError(
                f"linformer got {length} tokens but was built for max_len={self.max_len}; raise task.max_len"
            )
        keep = mask[:, None, :, None].to(k.dtype)
        proj = self.proj[:, :length].float()
        k = torch.einsum("kl,bhld->bhkd", proj, k * keep)
        v = torch.einsum("kl,bhld->bhkd", proj, v * keep)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
