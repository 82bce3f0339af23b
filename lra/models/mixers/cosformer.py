"""cosFormer (Qin et al. 2022): ReLU linear attention re-weighted by cos(pi/2 (i - j) / M)."""

from __future__ import annotations

import math

import torch

from lra.models.mixers.kernels import KernelMixer, linear_attention, real_rank
from lra.models.mixers.registry import register


def cos_sin_features(x: torch.Tensor, mask: torch.Tensor, zero_pads: bool = False) -> torch.Tensor:
    """[relu(x) cos(a_i), relu(x) sin(a_i)] with a_i = pi/2 * i / M, i = 1..M the position among the M real tokens.

    cos(a_i - a_j) = cos a_i cos a_j + sin a_i sin a_j, so the dot product of two such features is
    relu(q_i) . relu(k_j) cos(pi/2 (i - j) / M): the paper's decomposition, linear in L. M is each row's own
    number of real tokens, so padding moves no position. `zero_pads`: padded positions get zero features (keys).
    x [B, H, L, D] -> [B, H, L, 2D], as one broadcast product (no concatenation pass).
    """
    length = mask.sum(dim=-1, keepdim=True).to(x.dtype)  # [B, 1]
    angle = (math.pi / 2) * (real_rank(mask) + 1).to(x.dtype) / length  # [B, L]
    weights = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)  # [B, L, 2]
    if zero_pads:
        weights = weights * mask[..., None].to(x.dtype)
    b, h, n, d = x.shape
    features = torch.relu(x)[..., None, :] * weights[:, None, :, :, None]  # [B, H, L, 2, D]
    return features.view(b, h, n, 2 * d)


@register("cosformer")
class CosformerMixer(KernelMixer):
    """Non-negative ReLU features with a cosine locality re-weighting; padded keys are zeroed.

    The paper's M is the sequence length; here it is each example's real length (mask-aware), so an example's
    output does not depend on how far it is padded. No attention matrix, so `dropout` is not used.
    """

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return linear_attention(cos_sin_features(q, mask), cos_sin_features(k, mask, zero_pads=True), v)
