"""Performer (Choromanski et al. 2021): FAVOR+, softmax attention through positive orthogonal random features."""

from __future__ import annotations

import torch

from lra.errors import LRAError
from lra.models.mixers.kernels import KernelMixer, linear_attention
from lra.models.mixers.registry import register


def orthogonal_gaussian(num_features: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """[num_features, dim] random rows, orthogonal within each block of `dim` rows, each row's length drawn as the
    length of a Gaussian vector, so every row is marginally N(0, I) (the estimator stays unbiased) while the
    orthogonality lowers its variance."""
    blocks = -(-num_features // dim)
    gaussian = torch.randn(blocks, dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    # Signs fixed so that q is Haar-distributed: raw Householder QR makes e.g. every q[0, 0] negative, which
    # biases the directions and with them the estimator.
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[..., None, :]
    rows = q.transpose(-1, -2).reshape(blocks * dim, dim)[:num_features]
    lengths = torch.randn(num_features, dim, generator=generator, dtype=torch.float64).norm(dim=-1, keepdim=True)
    return (rows * lengths).float()


def positive_features(x: torch.Tensor, projection: torch.Tensor, stabiliser: torch.Tensor, eps: float = 1e-6):
    """phi(x) = (exp(w . x - |x|^2 / 2 - c) + eps) / sqrt(m) for the rows w of `projection`, so that
    E[phi(q) . phi(k)] = exp(q . k) up to the constant exp(-c) (c cancels in the normalised attention; it keeps
    exp from overflowing). x [B, H, L, d] already scaled by d^-1/4; `stabiliser` broadcasts against [B, H, L, m]."""
    wx = x @ projection.transpose(-1, -2)
    half_norm = 0.5 * x.square().sum(dim=-1, keepdim=True)
    return (torch.exp(wx - half_norm - stabiliser) + eps) * projection.shape[0] ** -0.5


def favor_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, projection: torch.Tensor):
    """FAVOR+ estimate of softmax(q k^T / sqrt(d)) v over the real keys; padded keys' features are zeroed, so they
    leave both the numerator and the normaliser. The query stabiliser is per query, the key one per (example,
    head) over real keys only: both cancel, and pad content cannot move them."""
    scale = q.shape[-1] ** -0.25
    q, k = q * scale, k * scale
    wq = q @ projection.transpose(-1, -2)
    wk = k @ projection.transpose(-1, -2)
    keep = mask[:, None, :, None]
    q_stab = wq.amax(dim=-1, keepdim=True).detach()
    k_stab = wk.masked_fill(~keep, torch.finfo(wk.dtype).min).amax(dim=(-2, -1), keepdim=True).detach()
    phi_q = positive_features(q, projection, q_stab)
    phi_k = positive_features(k, projection, k_stab) * keep.to(k.dtype)
    return linear_attention(phi_q, phi_k, v)


@register("performer")
class PerformerMixer(KernelMixer):
    """FAVOR+ with `num_features` positive orthogonal random features per head (shared by the heads of a layer).

    Features are redrawn every `redraw_every` training forward passes (0 = never) and never in eval. Draw i comes
    from a generator seeded with (`feature_seed`, i); `feature_seed: null` takes it from torch's global RNG at
    construction, so layers differ yet a seeded run is reproducible. The features are a buffer and the seed and
    pass count extra state, so a checkpoint resumes the same schedule. No attention matrix, so `dropout` is not used.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        num_features: int = 256,
        redraw_every: int = 1000,
        feature_seed: int | None = None,
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if num_features < 1 or redraw_every < 0:
            raise LRAError(f"model.num_features={num_features} must be >= 1 and model.redraw_every={redraw_every} >= 0")
        self.num_features = num_features
        self.redraw_every = redraw_every
        if feature_seed is None:
            feature_seed = int(torch.randint(0, 2**31 - 1, ()).item())
        self.feature_seed = int(feature_seed)
        self.passes = 0  # training forward passes so far; a Python int so that no step waits on the device
        self.register_buffer("projection", self.draw(0))

    def draw(self, index: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed((self.feature_seed * 1_000_003 + index) % 2**63)
        return orthogonal_gaussian(self.num_features, self.head_dim, generator)

    @torch.no_grad()
    def redraw_if_due(self) -> None:
        if self.redraw_every and self.passes and self.passes % self.redraw_every == 0:
            self.projection.copy_(self.draw(self.passes // self.redraw_every))
        self.passes += 1

    def get_extra_state(self) -> dict:
        return {"feature_seed": self.feature_seed, "passes": self.passes}

    def set_extra_state(self, state: dict) -> None:
        self.feature_seed, self.passes = int(state["feature_seed"]), int(state["passes"])

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.redraw_if_due()
        return favor_attention(q, k, v, mask, self.projection.float())
