"""Nystromformer (Xiong et al. 2021): softmax attention through m landmarks and an iterative pseudo-inverse."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lra.errors import LRAError
from lra.models.mixers.kernels import LandmarkMixer, iterative_pinv, landmark_block, segment_mean, segments
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
        seg = segments(mask, self.num_landmarks)
        valid = seg.valid  # [B, m]
        scale = self.head_dim**-0.5  # logits / sqrt(d), applied to the small landmark tensors only
        q_land = segment_mean(seg, q)  # [B, H, m, Dh]
        k_land = segment_mean(seg, k)
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
        head, as the authors' Conv2d with zero padding K // 2), computed by `band_conv`."""
        return band_conv(v, self.conv.weight.float().flatten(1))


def band_conv(v: torch.Tensor, kernel: torch.Tensor, block: int = 64) -> torch.Tensor:
    """y[b, h, l] = sum_j kernel[h, j] v[b, h, l + j - K // 2] (zero outside), v [B, H, L, D], kernel [H, K], K odd.

    As matmuls: the output cut into blocks of T >= K - 1 positions, block i = band_h [T, T + K - 1] times the
    window v[iT - K // 2 : (i + 1)T + K // 2], the band holding the kernel (band[t, t + j] = kernel[j]). The windows
    of every example, block and channel sit side by side, so each head is one [T, T + K - 1] x [T + K - 1, B * L/T
    * D] matmul, and so is each gradient. On one CPU thread at the authors' LRA size (B 32, L 2000, 2 heads of 32,
    K 35) this is about 4x faster forward and backward than a depthwise conv1d (oneDNN) and 10x than their Conv2d,
    for about 3x the multiply-adds (T 64: (T + K - 1) / K)."""
    b, h, n, d = v.shape
    k = kernel.shape[-1]
    p = k // 2
    t = max(block, 2 * p)
    nb = -(-n // t)  # blocks
    offset = torch.arange(t + 2 * p, device=v.device) - torch.arange(t, device=v.device)[:, None]  # [T, T + 2P]
    band = torch.where((offset >= 0) & (offset < k), kernel[:, offset.clamp(0, k - 1)], 0.0)  # [H, T, T + 2P]
    x = F.pad(v, (0, 0, p, (nb + 1) * t - n - p))  # [B, H, (nb + 1) T, D]: P zeros in front, the rest behind
    blocks = x.view(b, h, nb + 1, t, d).permute(1, 3, 0, 2, 4)  # [H, T, B, nb + 1, D]
    windows = torch.cat([blocks[:, :, :, :nb], blocks[:, : 2 * p, :, 1:]], dim=1)  # [H, T + 2P, B, nb, D]
    y = torch.bmm(band.to(v.dtype), windows.view(h, t + 2 * p, -1)).view(h, t, b, nb, d)
    return y.permute(2, 0, 3, 1, 4).reshape(b, h, nb * t, d)[:, :, :n]
