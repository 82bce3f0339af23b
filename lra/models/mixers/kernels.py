"""Pieces shared by the kernel / low-rank attention mixers: the projection skeleton, the linear-attention
contraction, mask-aware positions and landmarks, and the iterative pseudo-inverse of Nystromformer.

Every approximation here runs in float32, also under autocast: feature maps (exp, cos) and the iterative
pseudo-inverse lose too much in half precision.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lra.errors import LRAError
from lra.models.mixers.base import HeadedMixer, attend_all_if_empty
from lra.models.precision import no_autocast


def real_rank(mask: torch.Tensor) -> torch.Tensor:
    """Index of each position among the real tokens of its row (0-based, [B, L]); only meaningful where mask."""
    return mask.long().cumsum(dim=-1) - 1


class KernelMixer(HeadedMixer):
    """A headed mixer whose subclass writes a float32 kernel `mix(q, k, v, mask) -> [B, H, L, Dh]`.

    The mask reaching `mix` has at least one real token per row (see `attend_all_if_empty`).
    """

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = attend_all_if_empty(mask)
        q, k, v = self.heads(x)
        with no_autocast(x):
            y = self.mix(q.float(), k.float(), v.float(), mask)
        return self.finish(y.to(q.dtype)).to(x.dtype)


class LandmarkMixer(KernelMixer):
    """A kernel mixer approximated through `num_landmarks` segment-mean landmarks and a `pinv_iterations`-step
    pseudo-inverse (Nystromformer, Skyformer): the options and their checks, once."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        num_landmarks: int = 128,
        pinv_iterations: int = 6,
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if num_landmarks < 1 or pinv_iterations < 0:
            raise LRAError(
                f"model.num_landmarks={num_landmarks} must be >= 1 and model.pinv_iterations={pinv_iterations} >= 0"
            )
        self.num_landmarks = min(num_landmarks, max_len)
        self.pinv_iterations = pinv_iterations


def linear_attention(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """sum_j (phi_q_i . phi_k_j) v_j / sum_j (phi_q_i . phi_k_j) in O(L F D) instead of O(L^2).

    phi_q [B, H, L, F], phi_k [B, H, L, F] with padded keys already zeroed, v [B, H, L, D]. Features are
    non-negative, so the normaliser is too; it is clamped at `eps` so that a query seeing nothing outputs 0.
    The normaliser rides along the values as a column of ones: two matmuls in all, and phi_k's gradient comes
    back in phi_k's own layout (u^T phi_k rather than phi_k^T u). The numerator is multiplied by the normaliser's
    reciprocal, taken on the small [B, H, L, 1] column: the backward then makes two passes over [B, H, L, D] where a
    division makes four.
    """
    d = v.shape[-1]
    u = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # [B, H, L, D + 1]
    kv = u.transpose(-1, -2) @ phi_k  # sum_j u_j phi_k_j^T: [B, H, D + 1, F]
    out = phi_q @ kv.transpose(-1, -2)  # numerator and normaliser: [B, H, L, D + 1]
    return out[..., :d] * out[..., d:].clamp_min(eps).reciprocal()


class Segments(NamedTuple):
    """Where each position's landmark segment is (Nystromformer's, Skyformer's landmarks): built once per mask, then
    applied (`segment_mean`) to as many tensors as need landmarks.

    index [B * L]: row b's position l goes to slot b * (num + 1) + its segment, pads to the row's spare slot num;
    counts [B, num, 1]: real tokens per segment, at least 1; valid [B, num]: the segment holds a token."""

    index: torch.Tensor
    counts: torch.Tensor
    valid: torch.Tensor


def segments(mask: torch.Tensor, num: int) -> Segments:
    """`num` contiguous segments of each row's real tokens, pads left out.

    Segments are cut over each row's own real tokens (by rank), so appended padding changes nothing; a row with
    n < num real tokens gets one landmark per token and `num - n` empty (invalid) ones."""
    b = mask.shape[0]
    n_real = mask.sum(dim=-1, keepdim=True)  # [B, 1], >= 1
    per_row = n_real.clamp(max=num)
    segment = torch.div(real_rank(mask) * per_row, n_real, rounding_mode="floor")  # [B, L] in [0, per_row)
    segment = segment.masked_fill(~mask, num)  # pads in the spare slot
    counts = torch.zeros(b, num + 1, dtype=segment.dtype, device=mask.device)
    counts = counts.scatter_add_(1, segment, torch.ones_like(segment))[:, :num, None]  # [B, num, 1]
    slots = torch.arange(b, device=mask.device)[:, None] * (num + 1)
    return Segments((segment + slots).flatten(), counts.clamp_min(1), counts[..., 0] > 0)


def segment_mean(seg: Segments, x: torch.Tensor) -> torch.Tensor:
    """The segments' means of x [B, H, L, D] -> [B, H, num, D] (0 for an empty segment).

    One index_add of the rows [B * L, H * D] (the heads' channels side by side: a view of the projections' own
    layout) into the [B * (num + 1), H * D] slots, in O(B L H D); its backward gathers rows back. (On CUDA the
    order of the additions is free, as in any atomic sum, unless torch.use_deterministic_algorithms is on, under
    which index_add is deterministic.)"""
    b, h, n, d = x.shape
    num = seg.valid.shape[-1]
    rows = x.transpose(1, 2).reshape(b * n, h * d)
    sums = rows.new_zeros(b * (num + 1), h * d).index_add(0, seg.index, rows)
    means = sums.view(b, num + 1, h * d)[:, :num] / seg.counts.to(x.dtype)  # [B, num, H * D]
    return means.view(b, num, h, d).transpose(1, 2)


def segment_means(x: torch.Tensor, mask: torch.Tensor, num: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmarks as means of `num` contiguous segments of the real tokens (see `segments`).
    x [B, H, L, D], mask [B, L] -> landmarks [B, H, num, D], valid [B, num].
    """
    seg = segments(mask, num)
    return segment_mean(seg, x), seg.valid


def iterative_pinv(a: torch.Tensor, iterations: int) -> torch.Tensor:
    """Moore-Penrose pseudo-inverse of each [..., m, m] matrix by the iteration of Nystromformer (Razavi et al.):
    Z <- Z/4 (13 I - A Z (15 I - A Z (7 I - A Z))), from Z0 = A^T / (||A||_1 ||A||_inf).

    The scale of Z0 is taken per matrix (the reference code takes one maximum over the whole batch, which makes an
    example's output depend on its batch).
    """
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    norm_1 = a.abs().sum(dim=-2).amax(dim=-1)
    norm_inf = a.abs().sum(dim=-1).amax(dim=-1)
    z = a.transpose(-1, -2) / (norm_1 * norm_inf)[..., None, None]
    for _ in range(iterations):
        az = a @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z


def landmark_block(kernel: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Replace the rows and columns of invalid landmarks in a [B, H, m, m] landmark kernel by the identity, so the
    pseudo-inverse acts on the valid block alone (and the invalid block inverts to I, which is then multiplied by
    zero columns)."""
    both = valid[:, None, :, None] & valid[:, None, None, :]
    eye = torch.eye(kernel.shape[-1], dtype=kernel.dtype, device=kernel.device)
    return torch.where(both, kernel, eye)
