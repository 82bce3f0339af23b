"""The encoder's normalisation layers, chosen by `model.norm_type`: `layer` (LayerNorm, every Transformer recipe) or
`batch` (BatchNorm over the batch and the sequence, the S4 authors' `norm: batch` on every LRA task).

Both are called as `norm(x[B, L, D], mask[B, L])`. LayerNorm normalises each position by itself and ignores the
mask. BatchNorm's statistics are taken over real positions only: the S4 code pads each batch to its longest
sequence and lets the pads into the statistics, but this harness pads every task to its fixed `max_len`, where
counting pads would make a real position's output depend on how much padding the batch holds.
"""

from __future__ import annotations

import torch
from torch import nn

from lra.errors import LRAError

NORM_TYPES = ("layer", "batch")


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm that takes (and ignores) the mask, so that both norm types are called alike."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


class MaskedBatchNorm(nn.Module):
    """BatchNorm1d over [B, L, D] with statistics from the real positions of the batch (per channel).

    Training normalises with the batch's mean and biased variance and updates running estimates with `momentum`
    (unbiased variance, as nn.BatchNorm1d); eval uses the running estimates. Statistics are per process: under DDP
    each device normalises by its own batch, as the S4 code's BatchNorm1d does without SyncBatchNorm (the recipes
    this reproduces trained that way), and syncing would add two all-reduces per norm layer per step. Deliberately
    not an nn.BatchNorm subclass: Lightning's `sync_batchnorm` would replace it with an unmasked SyncBatchNorm, so
    that switch leaves it alone (conf/trainer/ddp.yaml). Running estimates are rank 0's in the checkpoint.
    """

    def __init__(self, d_model: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.register_buffer("running_mean", torch.zeros(d_model))
        self.register_buffer("running_var", torch.ones(d_model))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # [B, L, D]; float32 under mixed precision
        if self.training:
            w = torch.ones_like(h[..., :1]) if mask is None else mask[..., None].to(h.dtype)  # [B, L, 1]
            count = w.sum().clamp_min(1.0)
            mean = (h * w).sum((0, 1)) / count  # [D]
            var = ((h - mean).square() * w).sum((0, 1)) / count  # [D], biased: what this batch is normalised by
            with torch.no_grad():
                self.num_batches_tracked += 1
                unbiased = var * count / (count - 1).clamp_min(1.0)
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(unbiased.detach(), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        y = (h - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}, momentum={self.momentum}, masked statistics"


def make_norm(norm_type: str, d_model: int, eps: float = 1e-5) -> nn.Module:
    if norm_type == "layer":
        return LayerNorm(d_model, eps=eps)
    if norm_type == "batch":
        return MaskedBatchNorm(d_model, eps=eps)
    raise LRAError(f"model.norm_type={norm_type!r} is not a normalisation; use one of: {', '.join(NORM_TYPES)}")
