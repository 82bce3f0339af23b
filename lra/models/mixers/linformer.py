"""Linformer (Wang et al. 2020): keys and values projected along the sequence to a fixed length k;
`LinformerRelease`: the LRA release's (k = 16, unmasked)."""

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
    input (L < max_len) uses the first L columns of E. k = min(proj_len, max_len). E starts lecun-normal
    (std 1/sqrt(max_len)), LinformerAttention's default; the released block passed xavier-uniform instead (see
    LinformerRelease). `dropout` drops attention weights in training.
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


# LinformerAttention's `low_rank_features` default; LinformerBlock never passes another value, so the Text config's
# `low_rank_features = 32` (a top-level key) never reached the model either.
RELEASE_RANK = 16


@register("linformer", impl="release")
class LinformerRelease(LinformerMixer):
    """Linformer as the LRA release computed it (models/linformer/linformer_attention.py):

    - k = 16 on every task, whatever `proj_len` says (it is ignored; see RELEASE_RANK), not capped at max_len;
    - one E per layer (the release's `lr_kernel` [max_len, k], stored here transposed as [k, max_len]), shared by
      keys, values and heads, xavier-uniform initialised like the block's other kernels: U(+-sqrt(6 / (max_len + k)));
    - no mask: a length-L input is projected by the first L columns of E, pads included (LRA pads every sequence
      to max_len), and the attention over the k projected keys has no bias. So `uses_mask = False`.
    `dropout` drops attention weights in training, as released.
    """

    uses_mask = False

    def __init__(self, d_model: int, n_heads: int, max_len: int, dropout: float, **options) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **options)
        self.proj_len = RELEASE_RANK
        bound = math.sqrt(6.0 / (max_len + RELEASE_RANK))
        self.proj = nn.Parameter(torch.empty(RELEASE_RANK, max_len).uniform_(-bound, bound))

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = q.shape[-2]
        if length > self.max_len:
            raise LRAError(
                f"linformer got {length} tokens but was built for max_len={self.max_len}; raise task.max_len"
            )
        proj = self.proj[:, :length].float()
        k = torch.einsum("kl,bhld->bhkd", proj, k)  # [B, H, 16, Dh]
        v = torch.einsum("kl,bhld->bhkd", proj, v)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
