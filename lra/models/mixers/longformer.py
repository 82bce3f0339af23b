"""Longformer attention (Beltagy et al. 2020): sliding window plus global attention on the first token(s); and
`LongformerRelease`, what the LRA release computed (an asymmetric window, no global token)."""

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


def uniform_rows(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """What the release's dense softmax gives a row whose every key carries the additive -1e10 bias: in float32
    the scores vanish next to the bias, so the output is the mean of all values, yet the gradient still reaches
    the scores as softmax's at uniform weights, (I - 1 1^T / L) / L. That gradient is added here as a term that
    is zero in the forward, in O(L * Dh^2): sum_t (s_t - mean s) v_t / L with s_t = q . k_t.
    q (scaled), k, v [B, H, L, Dh] -> [B, H, L, Dh]."""
    n = k.shape[2]
    vd = v.detach()
    live = q @ (k.transpose(-1, -2) @ vd) - (q * k.mean(dim=2, keepdim=True)).sum(-1, keepdim=True) * vd.sum(2, True)
    return v.mean(dim=2, keepdim=True) + (live - live.detach()) / n


@register("longformer", impl="release")
class LongformerRelease(LongformerAttention):
    """Longformer attention as the LRA release computed it (models/longformer/longformer_attention.py):

    - window only: `global_mask` defaults to None and no config sets it, so no position is global;
      `n_global` and `separate_global` are ignored (the release still creates the global q/k/v projections but
      never uses them, so they are left out here);
    - the band is asymmetric for an even window: right = window // 2 keys to the right, and window - right
      positions to the left including the query itself (window 512: offsets -255 .. +256);
    - padding is masked for queries as well as keys (the release's additive -1e10 bias on a dense [L, L]
      softmax), so a padded query, with no allowed key, attends uniformly to all L positions, pads included
      (`uniform_rows`, gradient as released). Real outputs do not depend on padded content.

    At train time the release also drops out those uniform weights (zero-mean noise of relative size about
    sqrt(p / ((1 - p) L))); that is left out here to keep memory O(L * 1.5 window) instead of O(L^2).
    """

    def __init__(self, d_model: int, n_heads: int, max_len: int, dropout: float, n_global: int = 1, **options) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, n_global=0, **options)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        q, k, v = self.heads(x)
        right = self.window // 2
        left = self.window - right  # the query itself and left - 1 positions before it
        size = min(max(right, 1), length)  # blocks b-1, b, b+1 then cover every offset in -(left-1) .. right
        padded = padded_length(length, size)
        qb = to_blocks(pad_dim(q, padded, dim=2), size, dim=2)
        kn, vn = (neighbours(to_blocks(pad_dim(t, padded, dim=2), size, dim=2), 1, 1, dim=2) for t in (k, v))
        real_q = to_blocks(pad_dim(mask, padded, dim=1, value=False), size, dim=1)  # [B, nb, bs]
        real_n = neighbours(real_q, 1, 1, dim=1, fill=False)  # [B, nb, 3 bs]
        pos_b = to_blocks(torch.arange(padded, device=x.device), size, dim=0)
        pos_n = neighbours(pos_b, 1, 1, dim=0, fill=-4 * padded)
        offset = pos_n[:, None, :] - pos_b[:, :, None]  # key - query
        in_band = (offset > -left) & (offset <= right)
        valid = real_q[:, :, :, None] & real_n[:, :, None, :] & in_band  # [B, nb, bs, 3 bs]
        (probs,), _ = joint_softmax([qb @ kn.transpose(-1, -2)], [valid[:, None]], self.dropout, self.training)
        y = (probs.to(v.dtype) @ vn).flatten(2, 3)[:, :, :length]
        # A row with no allowed key: uniform over all L positions, as the release's dense softmax makes it.
        empty = ~valid.any(dim=-1).flatten(1)[:, None, :length, None]  # [B, 1, L, 1]
        y = torch.where(empty, uniform_rows(q, k, v), y)
        return self.finish(y, length)
