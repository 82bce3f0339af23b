"""Skyformer (Chen et al. 2021): Gaussian-kernel attention, approximated by the Nystrom method."""

from __future__ import annotations

import math

import torch

from lra.models.mixers.kernels import LandmarkMixer, iterative_pinv, landmark_block, segment_means
from lra.models.mixers.registry import register


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, b_keep: torch.Tensor | None = None) -> torch.Tensor:
    """exp(-|a_i - b_j|^2 / 2) for rows of a [B, H, n, d] and b [B, H, m, d], as exp(a.b - |a|^2/2 - |b|^2/2)
    (one matmul); the exponent is clamped at 0, which rounding could otherwise exceed. `b_keep` [B, m]: columns
    where False get exactly 0 (their offset is -inf).

    The [n, m] exponent is written once and offset, clamped and exponentiated in place: on CPU each extra pass
    over it costs about as much as the matmul."""
    rows = -0.5 * a.square().sum(-1)[..., :, None]  # [B, H, n, 1]
    cols = -0.5 * b.square().sum(-1)[..., None, :]  # [B, H, 1, m]
    if b_keep is not None:
        cols = cols.masked_fill(~b_keep[:, None, None, :], -math.inf)
    return (a @ b.transpose(-1, -2)).add_(rows).add_(cols).clamp_(max=0.0).exp_()


@register("skyformer")
class SkyformerMixer(LandmarkMixer):
    """Kernelized attention C V with C_ij = exp(-|q_i - k_j|^2 / (2 sqrt(d))): the softmax kernel exp(q.k/sqrt(d))
    normalised by exp(|q|^2/(2 sqrt d)) exp(|k|^2/(2 sqrt d)) instead of by its row sums, as in the paper.

    C is the off-diagonal block of the PSD Gaussian kernel matrix of [Q; K], so its Nystrom approximation
    C ~ C(Q, S) C(S, S)^+ C(S, K) is well posed. The landmarks S are `num_landmarks` segment means of each row's
    real keys (the authors sample rows of [Q; K] at random on every call, also in eval; means keep eval
    deterministic and padding-invariant, and with as many landmarks as real tokens S = K and the result is exact).
    C(S, S) is symmetrically normalised by its row sums before the `pinv_iterations`-step pseudo-inverse (as the
    authors' code does, to condition it) and un-normalised after. Padded keys get zero kernel weight. No attention
    matrix is formed, so `dropout` is not used.
    """

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scale = self.head_dim**-0.25  # |q - k|^2 / (2 sqrt d) = |q' - k'|^2 / 2 with q' = q d^-1/4
        q, k = q * scale, k * scale
        land, valid = segment_means(k, mask, self.num_landmarks)
        c_qs = gaussian_kernel(q, land, valid)  # [B, H, L, m], 0 at invalid landmarks
        c_ss = landmark_block(gaussian_kernel(land, land), valid)  # [B, H, m, m]
        c_sk = gaussian_kernel(land, k, mask)  # [B, H, m, L], 0 at padded keys
        d = c_ss.sum(dim=-1).rsqrt()  # row sums >= 1 (unit diagonal)
        inverse = iterative_pinv(d[..., :, None] * c_ss * d[..., None, :], self.pinv_iterations)
        inverse = d[..., :, None] * inverse * d[..., None, :]
        return c_qs @ (inverse @ (c_sk @ v))
