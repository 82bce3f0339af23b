"""Longformer attention (Beltagy et al. 2020): sliding window plus global attention on the first token(s)."""

from __future__ import annotations

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.mixers.base import split_heads
from lra.models.mixers.blocks import (
    BlockMixerBase,
    joint_softmax,
    neighbours,
    pad_dim,
    padded_length,
    real_tokens,
    shared_scores,
    shared_values,
    to_blocks,
)
from lra.models.mixers.registry import register


@register("longformer")
class LongformerAttention(BlockMixerBase):
    """Position i attends to |i - j| <= window // 2 and to the first `n_global` positions (CLS); those global
    positions attend to every position.

    As in the paper (and the LRA release), global rows use their own projections Q_g, K_g, V_g when
    `separate_global` (else the sliding-window ones); non-global rows reach global keys through the window
    projections. The band is computed in blocks of window // 2, each seeing its two neighbour blocks: memory
    O(L * 1.5 window). No dilation (the LRA release has none either).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        window: int = 512,
        n_global: int = 1,
        separate_global: bool = True,
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if window < 0:
            raise LRAError(f"model.window={window} must be >= 0")
        if n_global < 0:
            raise LRAError(f"model.n_global={n_global} must be >= 0")
        self.window = window
        self.n_global = n_global
        self.qkv_global = nn.Linear(d_model, 3 * self.qkv_dim, bias=False) if separate_global and n_global else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        q, k, v = self.heads(x)
        real = real_tokens(mask)
        n_global = min(self.n_global, length)
        half = self.window // 2
        size = min(max(half, 1), length)  # blocks b-1, b, b+1 then cover every offset up to `half`
        padded = padded_length(length, size)
        qb = to_blocks(pad_dim(q, padded, dim=2), size, dim=2)
        kn, vn = (neighbours(to_blocks(pad_dim(t, padded, dim=2), size, dim=2), 1, 1, dim=2) for t in (k, v))
        real_n = neighbours(to_blocks(pad_dim(real, padded, dim=1, value=False), size, dim=1), 1, 1, dim=1, fill=False)
        pos_b = to_blocks(torch.arange(padded, device=x.device), size, dim=0)
        pos_n = neighbours(pos_b, 1, 1, dim=0, fill=-4 * padded)
        # Global keys are left out of the band: they come once, through the global group below.
        in_band = ((pos_b[:, :, None] - pos_n[:, None, :]).abs() <= half) & (pos_n[:, None, :] >= n_global)
        scores = [qb @ kn.transpose(-1, -2)]
        valid = [real_n[:, None, :, None, :] & in_band]
        if n_global:
            scores.append(shared_scores(qb, k[:, :, :n_global]))
            valid.append(real[:, None, None, None, :n_global])
        probs, _ = joint_softmax(scores, valid, self.dropout, self.training)
        y = probs[0].to(v.dtype) @ vn
        if n_global:
            y = y + shared_values(probs[1].to(v.dtype), v[:, :, :n_global])
        y = y.flatten(2, 3)[:, :, :length]
        if n_global:
            if self.qkv_global is not None:
                qg, kg, vg = (split_heads(t, self.n_heads) for t in self.qkv_global(x).chunk(3, dim=-1))
                qg = qg * self.head_dim**-0.5
            else:
                qg, kg, vg = q, k, v
            y = torch.cat([self.attend_all(qg[:, :, :n_global], kg, vg, real), y[:, :, n_global:]], dim=2)
        return self.finish(y, length)
