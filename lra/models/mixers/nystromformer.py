"""Nystromformer (Xiong et al. 2021): softmax attention through m landmarks and an iterative pseudo-inverse."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lra.errors import LRAError
from lra.models.mixers.kernels import (
    LandmarkMixer,
    iterative_pinv,
    landmark_block,
    segment_weights,
    weighted_landmarks,
)
from lra.models.mixers.registry import register


def masked_softmax_(logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis where `keep`. `logits` must be a fresh matmul result (its backward does not need
    it): it is filled in place and outside autograd, which saves a copy and a backward pass over [B, H, L, m]. The
    gradient is the same as with masked_fill's, as the softmax's output, hence its gradient, is exactly 0 where
    not kept, except in a row with nothing kept (uniform output, not NaN), which the mixers never make (see
    `attend_all_if_empty`)."""
    with torch.no_grad():
        logits.masked_fill_(~keep, torch.finfo(logits.dtype).min)
    return torch.softmax(logits, dim=-1)


@register("nystromformer")
class NystromformerMixer(LandmarkMixer):
    """softmax(Q Kl^T) pinv(softmax(Ql Kl^T)) softmax(Ql K^T) V, all logits scaled by 1/sqrt(d).

    Landmarks Ql, Kl are means of `num_landmarks` contiguous segments of each row's real tokens (pads excluded,
    segments cut by real length so appended padding changes nothing); with no more real tokens than landmarks
    every token is its own landmark and the result is exact attention up to the pseudo-inverse. The
    pseudo-inverse takes `pinv_iterations` steps of the paper's iteration (6 in the paper). `conv_kernel_size`
    adds the paper's skip: a depthwise (one kernel per head) convolution of V along the sequence (35 in the
    authors' LRA configs; 0 or null turns it off). The approximation has no attention matrix to drop from,
    so `dropout` is not used (nor was it in the authors' code).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        num_landmarks: int = 128,
        pinv_iterations: int = 6,
        conv_kernel_size: int | None = 35,
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, num_landmarks, pinv_iterations, **base)
        self.conv = None
        if conv_kernel_size:
            if conv_kernel_size < 0 or conv_kernel_size % 2 == 0:
                raise LRAError(f"model.conv_kernel_size={conv_kernel_size} must be odd (e.g. 35), or null for none")
            self.conv = nn.Conv2d(n_heads, n_heads, (conv_kernel_size, 1), groups=n_heads, bias=False)

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights, valid = segment_weights(mask, self.num_landmarks)  # [B, m, L], [B, m]
        scale = self.head_dim**-0.5  # logits / sqrt(d), applied to the small landmark tensors only
        q_land = weighted_landmarks(weights, q)  # [B, H, m, Dh]
        k_land = weighted_landmarks(weights, k)
        q_land_scaled, k_land_scaled = q_land * scale, k_land * scale
        valid_cols = valid[:, None, None, :]
        kernel_1 = masked_softmax_(q @ k_land_scaled.transpose(-1, -2), valid_cols)  # [B, H, L, m]
        kernel_2 = masked_softmax_(q_land_scaled @ k_land.transpose(-1, -2), valid_cols)  # [B, H, m, m]
        kernel_2 = landmark_block(kernel_2, valid)
        kernel_3 = masked_softmax_(q_land_scaled @ k.transpose(-1, -2), mask[:, None, None, :])  # [B, H, m, L]
        y = kernel_1 @ (iterative_pinv(kernel_2, self.pinv_iterations) @ (kernel_3 @ v))
        if self.conv is not None:
            y = y + self.value_conv(v * mask[:, None, :, None].to(v.dtype))
        return y

    def value_conv(self, v: torch.Tensor) -> torch.Tensor:
        """The depthwise skip along the sequence, [B, H, L, Dh] -> [B, H, L, Dh]: `self.conv` (one [K, 1] kernel per
        head, as the authors' Conv2d) applied as a conv1d over [B, H * Dh, L], each head's kernel repeated over its
        Dh channels. The same sums; on CPU about 7x faster forward and backward than the [L, Dh]-image Conv2d."""
        b, h, n, dh = v.shape
        kernel = self.conv.weight.float()  # [H, 1, K, 1]
        weight = kernel.view(h, 1, -1).repeat_interleave(dh, dim=0)  # [H * Dh, 1, K]
        x = v.transpose(-1, -2).reshape(b, h * dh, n)  # [B, H * Dh, L]
        y = F.conv1d(x, weight, padding=weight.shape[-1] // 2, groups=h * dh)
        return y.view(b, h, dh, n).transpose(-1, -2)
