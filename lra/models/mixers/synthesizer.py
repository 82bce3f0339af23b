"""Synthesizer (Tay et al. 2021): attention weights synthesized without query-key dot products;
`SynthesizerRelease`: the LRA release's (a learned random matrix added to dot-product logits)."""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from lra.errors import LRAError
from lra.models.mixers.attention import key_padding_mask
from lra.models.mixers.base import HeadedMixer, split_heads
from lra.models.mixers.registry import register

VARIANTS = ("dense", "random")


@register("synthesizer")
class Synthesizer(HeadedMixer):
    """Softmax over synthesized logits [H, L, L], then a weighted sum of projected values, per head.

    `variant`:
    - "dense": each token's own logits over all key positions from a per-head 2-layer MLP,
      W2 ReLU(W1 x_i + b1) + b2, with W2 producing max_len logits (the first L kept for a length-L input);
    - "random": input-independent logits R = R1 R2^T (factorized random), R1, R2 of shape [max_len, `rank`] per head,
      trained when `learned` else fixed at their random init.
    Padded keys are masked before the softmax, so padding content never reaches real positions.
    """

    roles = "v"

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        variant: str = "dense",
        rank: int = 8,
        learned: bool = True,
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if variant not in VARIANTS:
            raise LRAError(f"model.variant={variant!r} is not a synthesizer variant; use one of {', '.join(VARIANTS)}")
        if rank < 1:
            raise LRAError(f"model.rank={rank} must be a positive integer")
        self.variant = variant
        self.attn_drop = nn.Dropout(dropout)
        head_dim = self.head_dim
        if variant == "dense":
            # W1 for all heads at once: head h's hidden units are columns h*head_dim..(h+1)*head_dim.
            self.hidden = nn.Linear(d_model, self.qkv_dim)
            self.w2 = nn.Parameter(torch.randn(n_heads, head_dim, max_len) * head_dim**-0.5)
            self.b2 = nn.Parameter(torch.zeros(n_heads, 1, max_len))
        else:
            # Each factor at std rank^-1/4 so that the logits have unit variance.
            factors = torch.randn(2, n_heads, max_len, rank) * rank**-0.25
            if learned:
                self.factors = nn.Parameter(factors)
            else:
                self.register_buffer("factors", factors)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """[B, H, L, L] (dense) or [1, H, L, L] (random) logits over key positions."""
        n = x.shape[1]
        if self.variant == "dense":
            h = F.relu(split_heads(self.hidden(x), self.n_heads))
            return h @ self.w2[..., :n].to(h.dtype) + self.b2[..., :n].to(h.dtype)
        r1, r2 = self.factors[:, :, :n].to(x.dtype)
        return (r1 @ r2.transpose(-1, -2))[None]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        (v,) = self.heads(x)
        logits = self.logits(x).float().masked_fill(~key_padding_mask(mask), float("-inf"))
        weights = self.attn_drop(logits.softmax(dim=-1).to(v.dtype))
        return self.finish(weights @ v)


# The release's attention bias where the padding mask is 0: added to the logits, not filled in, so a padded query's
# row (every entry masked) is uniform over all keys in float32 (|logit| << ulp(1e10) = 1024).
RELEASE_MASKED = -1e10


@register("synthesizer", impl="release")
class SynthesizerRelease(HeadedMixer):
    """The Synthesizer as the LRA release computed it on every task (models/synthesizer/: the encoder default
    `synthesizer_mode='random'` with `ignore_dot_product=False`; the image configs set 'random' too, and the Text
    config's factorized / k / ignore_dot_product keys are top-level, so they never reached the model):

        softmax(Q K^T / sqrt(d) + R[:, :L, :L] + bias) V, per head,

    a dense Random Synthesizer *added to* dot-product attention, with its own q, k, v projections. R [H, max_len,
    max_len] is a trained parameter, xavier-uniform over its (H, max_len, max_len) shape as Flax computes fans
    (fan_in = fan_out = H * max_len): U(+-sqrt(3 / (H * max_len))), nearly zero, so training starts as plain
    attention. `bias` is -1e10 where the query or the key is padding (`RELEASE_MASKED`): real outputs never see
    pads, and a padded query averages all values uniformly. `variant`, `rank` and `learned` are ignored: every
    released run used this mode. `dropout` drops attention weights in training.
    """

    roles = "qkv"

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        variant: str = "dense",
        rank: int = 8,
        learned: bool = True,
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        self.attn_drop = nn.Dropout(dropout)
        bound = (3.0 / (n_heads * max_len)) ** 0.5
        self.random = nn.Parameter(torch.empty(n_heads, max_len, max_len).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        if n > self.max_len:
            raise LRAError(f"synthesizer got {n} tokens but was built for max_len={self.max_len}; raise task.max_len")
        q, k, v = self.heads(x)
        device = x.device.type  # autocast exists on cpu/cuda/xpu/mps...; elsewhere there is nothing to turn off
        off = torch.autocast(device, enabled=False) if torch.amp.is_autocast_available(device) else nullcontext()
        with off:
            logits = (q.float() * self.head_dim**-0.5) @ k.float().transpose(-1, -2)  # [B, H, L, L]
            logits = logits + self.random[:, :n, :n].float()
            allowed = mask[:, None, :, None] & mask[:, None, None, :]
            logits = logits + torch.where(allowed, 0.0, RELEASE_MASKED)
            weights = logits.softmax(dim=-1)
        weights = self.attn_drop(weights.to(v.dtype))
        return self.finish(weights @ v)
