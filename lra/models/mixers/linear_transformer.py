"""Linear Transformer (Katharopoulos et al. 2020): softmax replaced by the kernel phi(q) . phi(k), phi = elu + 1;
`LinearTransformerRelease`: the LRA release's (unmasked)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lra.models.mixers.kernels import KernelMixer, linear_attention
from lra.models.mixers.registry import register

RELEASE_EPS = 1e-6  # linear_attention's eps, added to the normaliser


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = elu(x) + 1 > 0, the feature map of the paper. The 1 is added in place (elu's backward reads its
    input, not its output): one [B, H, L, F] tensor fewer to allocate."""
    return F.elu(x).add_(1.0)


@register("linear_transformer")
class LinearTransformerMixer(KernelMixer):
    """V'_i = phi(Q_i) sum_j phi(K_j) V_j^T / phi(Q_i) sum_j phi(K_j), in O(L) time and memory.

    Padded keys are zeroed after the feature map: phi(0) = 1, so zeroing before it would still let pads in.
    There is no attention matrix, so `dropout` (attention dropout) is not used.
    """

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[:, None, :, None].to(k.dtype)
        return linear_attention(elu_feature_map(q), elu_feature_map(k).mul_(keep), v)


@register("linear_transformer", impl="release")
class LinearTransformerRelease(LinearTransformerMixer):
    """The Linear Transformer as the LRA release computed it (models/linear_transformer/linear_attention.py):
    phi = elu + 1 as in the paper, but the padding mask is never used, so padded positions enter sum_j phi(K_j)
    and sum_j phi(K_j) V_j^T like tokens (`uses_mask = False`), and the normaliser gets + 1e-6 (not a clamp).
    `dropout` is not used (the release deletes it: "figure out how to apply attention dropout").
    """

    uses_mask = False

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        phi_q, phi_k = elu_feature_map(q), elu_feature_map(k)
        kv = torch.einsum("bhlf,bhld->bhfd", phi_k, v)
        normaliser = torch.einsum("bhlf,bhf->bhl", phi_q, phi_k.sum(dim=-2)) + RELEASE_EPS
        return torch.einsum("bhlf,bhfd->bhld", phi_q, kv) / normaliser[..., None]
