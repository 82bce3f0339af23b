"""Exact softmax self-attention (the LRA Transformer), through `scaled_dot_product_attention`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lra.models.mixers.base import HeadedMixer, attend_all_if_empty
from lra.models.mixers.registry import register


def key_padding_mask(mask: torch.Tensor) -> torch.Tensor:
    """Boolean [B, 1, 1, L] mask for SDPA (see `attend_all_if_empty`: no row is NaN)."""
    return attend_all_if_empty(mask)[:, None, None, :]


@register("attention")
class Attention(HeadedMixer):
    """Multi-head softmax attention over real tokens only (padded keys get zero weight).

    Projections are bias-free as in the released LRA Transformer. `attend` also serves cross-attention (Luna).
    The release's Transformer is this method: impl=release only drops the output bias, as released.
    """

    released = True

    def attend(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None) -> torch.Tensor:
        """Queries from x [B, L, D] over keys/values from context [B, M, D] (mask [B, M] or None) -> [B, L, D]."""
        q, k, v = self.heads(x) if context is x else self.cross_heads(x, context)
        attn_mask = None if context_mask is None else key_padding_mask(context_mask)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.finish(y)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.attend(x, x, mask)
