"""Exact softmax self-attention (the LRA Transformer), through `scaled_dot_product_attention`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lra.models.mixers.base import PADDED, HeadedMixer, Mixer, attend_all_if_empty, within
from lra.models.mixers.registry import register

# Queries per block of the CPU dropout path: small enough to keep each block's [B, H, Q, L] weights in cache.
CPU_DROPOUT_BLOCK = 256


def kernel_for(device: torch.device, dropout: float, training: bool) -> str:
    """Which attention computation runs: SDPA's fused kernels, except for attention dropout on CPU, where SDPA
    falls back to its unfused math kernel and the blocked path below is faster (benchmarks/README.md, "Attention
    dropout on CPU")."""
    return "cpu_blocked_dropout" if training and dropout > 0 and device.type == "cpu" else "sdpa"


def blocked_dropout_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None, dropout: float
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) with dropout on the weights, times v, one block of queries at a time: the same
    computation and dropout distribution as SDPA's math kernel, without its full [B, H, L, L] temporaries.
    q [B, H, L, Dh], k, v [B, H, M, Dh], attn_mask broadcastable to [B, H, L, M] (True = attend)."""
    scale = q.shape[-1] ** -0.5
    blocks = []
    for start in range(0, q.shape[2], CPU_DROPOUT_BLOCK):
        scores = (q[:, :, start : start + CPU_DROPOUT_BLOCK] @ k.transpose(-1, -2)) * scale
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        weights = F.dropout(torch.softmax(scores, dim=-1), dropout, training=True)
        blocks.append(weights @ v)
    return torch.cat(blocks, dim=2)


def release_padded_rows(
    y: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, dropout: float
) -> torch.Tensor:
    """The LRA release masks attention by query x key padding (flax `make_padding_mask`, a -1e10 bias in float32),
    so a padded query's logits are all alike: its row is uniform over all L keys, pads included, with attention
    dropout as any row. y [B, H, L, Dh] (real rows kept), k, v [B, H, L, Dh], mask [B, L] -> [B, H, L, Dh]."""
    if dropout > 0:  # zero queries: equal logits, each row its own dropout draw, as there
        zeros = torch.zeros_like(y)
        if kernel_for(y.device, dropout, True) == "cpu_blocked_dropout":
            uniform = blocked_dropout_attention(zeros, k, v, None, dropout)
        else:
            uniform = F.scaled_dot_product_attention(zeros, k, v, dropout_p=dropout)
    else:
        uniform = v.mean(dim=2, keepdim=True)
    return torch.where(mask[:, None, :, None], y, uniform.to(y.dtype))


def key_padding_mask(mask: torch.Tensor) -> torch.Tensor:
    """Boolean [B, 1, 1, L] mask for SDPA (see `attend_all_if_empty`: no row is NaN)."""
    return attend_all_if_empty(mask)[:, None, None, :]


@register("attention")
class Attention(HeadedMixer):
    """Multi-head softmax attention over real tokens only (padded keys get zero weight).

    Projections are bias-free as in the released LRA Transformer; `attend` is its cross-attention (Luna).
    The release's Transformer is this method: impl=release drops the output bias and makes each padded query row
    uniform over all keys (`release_padded_rows`), as released.
    """

    released = True
    uses_state = True  # reads the encoder's `padded`: a batch without padding attends with no mask

    def attend(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None) -> torch.Tensor:
        """Cross-attention: queries from x [B, L, D] over keys/values from context [B, M, D] (mask [B, M] or None)
        -> [B, L, D]."""
        q, k, v = self.cross_heads(x, context)
        return self.finish(self.core(q, k, v, None if context_mask is None else key_padding_mask(context_mask)))

    def self_attention(self, x: torch.Tensor, mask: torch.Tensor, state: dict | None, first: bool) -> torch.Tensor:
        """Every position's output [B, L, D], or with `first` position 0's alone [B, 1, D] (its query against every
        key: O(L) scores instead of O(L^2))."""
        release = self.impl == "release" and self.released
        # No padding anywhere in the batch (known on the host, lra.models.encoder.PADDED): no mask, which lets SDPA
        # pick FlashAttention on a GPU; a boolean mask rules it out. The release masks every batch.
        unpadded = not release and state is not None and state.get(PADDED) is False
        q, k, v = self.heads(x)  # [B, H, L, Dh] each
        attn_mask = self.banded(None if unpadded else key_padding_mask(mask), x)  # [B, 1, 1 or L, L] or [L, L]
        if first:
            q, mask = q[:, :, :1], mask[:, :1]
            attn_mask = None if attn_mask is None else attn_mask[..., :1, :]  # position 0's row
        y = self.core(q, k, v, attn_mask)
        if release:
            y = release_padded_rows(y, k, v, mask, self.dropout if self.training else 0.0)
        return self.finish(y)

    def banded(self, attn_mask: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
        """The locality probe's band |i - j| <= window over self-attention scores (None: no band); a query keeps its
        own key, so a padded row never becomes NaN."""
        if self.window is None:
            return attn_mask
        pos = torch.arange(x.shape[1], device=x.device)
        near = within(pos, pos, self.window)  # [L, L]
        return near if attn_mask is None else near & (attn_mask | (pos[:, None] == pos))

    def core(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """softmax(q k^T / sqrt(Dh)) v with attention dropout: q [B, H, L, Dh], k, v [B, H, M, Dh] -> [B, H, L, Dh]."""
        if kernel_for(q.device, self.dropout, self.training) == "cpu_blocked_dropout":
            return blocked_dropout_attention(q, k, v, attn_mask, self.dropout)
        dropout = self.dropout if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)

    def restrict(self, window: int | None) -> bool:
        # A subclass that resizes the sequence (the Fourier Transformer) would band positions that are not tokens'.
        if type(self).resizer is not Mixer.resizer:
            return False
        self.window = window
        return True

    def first_row(self, x: torch.Tensor, mask: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        """What `forward` gives at position 0 (a padded query row under impl=release included), from one query; a
        subclass with a `forward` of its own takes the default (the whole output's first row)."""
        if type(self).forward is not Attention.forward:
            return super().first_row(x, mask, state)
        return self.self_attention(x, mask, state, first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        return self.self_attention(x, mask, state, first=False)
