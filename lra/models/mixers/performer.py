"""Performer (Choromanski et al. 2021): FAVOR+, softmax attention through positive orthogonal random features;
`PerformerRelease`: the two kernels the LRA release ran (ReLU features by default, FAVOR+ on ListOps)."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from lra.errors import LRAError
from lra.models.mixers.kernels import KernelMixer
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


FAVOR_EPS = 1e-6  # added to every feature, so that no query's normaliser is 0


def favor_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, projection: torch.Tensor,
    eps: float = FAVOR_EPS,
) -> torch.Tensor:
    """FAVOR+ estimate of softmax(q k^T / sqrt(d)) v over the real keys, with the positive features
    phi(x) = (exp(w . x' - |x'|^2 / 2 - c) + eps) / sqrt(m), x' = x d^-1/4, so that E[phi(q) . phi(k)] =
    exp(q . k / sqrt(d)) up to exp(-c). The query stabiliser c is per query, the key one per (example, head) over
    real keys only: both cancel, and pad content cannot move them. Padded keys have phi = 0 (their shift is +inf),
    so they leave both the numerator and the normaliser.

    q, k, v [B, H, L, d], mask [B, L], projection [m, d] -> [B, H, L, d]. The same arithmetic as forming phi and
    calling `linear_attention`, arranged to touch the [B, H, L, m] features as few times as possible: the scale
    d^-1/4 goes into the projection, 1/sqrt(m) into the shift (log), eps is added to the small [m, d+1] sums
    instead of to every feature, and the normaliser rides along the values as one extra column of ones."""
    d, m = q.shape[-1], projection.shape[0]
    scale = d**-0.25
    projection = projection * scale  # w . x' = (w d^-1/4) . x
    log_ratio = -0.5 * math.log(m)  # exp(z + log_ratio) = exp(z) / sqrt(m)
    keep = mask[:, None, :, None]  # [B, 1, L, 1]
    wq = q @ projection.transpose(-1, -2)  # [B, H, L, m]
    wk = k @ projection.transpose(-1, -2)
    with torch.no_grad():  # the stabilisers are constants: they cancel
        q_stab = wq.amax(dim=-1, keepdim=True)  # [B, H, L, 1]
        k_stab = wk.amax(dim=-1, keepdim=True).masked_fill_(~keep, -math.inf).amax(dim=-2, keepdim=True)
    half_scale = 0.5 * scale**2
    q_offset = (log_ratio - q_stab) - half_scale * q.square().sum(dim=-1, keepdim=True)  # [B, H, L, 1]
    k_offset = (log_ratio - k_stab) - half_scale * k.square().sum(dim=-1, keepdim=True)
    k_offset = k_offset.masked_fill(~keep, -math.inf)  # exp(-inf) = 0: padded keys have no features
    # Offset and exponentiated in place: the matmul's backward does not need its output and exp's needs only its
    # result, and on CPU every extra pass over [B, H, L, m] costs about as much as the projection matmul itself.
    e_q = wq.add_(q_offset).exp_()  # phi_q = e_q + eps'
    e_k = wk.add_(k_offset).exp_()  # phi_k = e_k + eps' at real keys, 0 at pads
    eps = eps * m**-0.5
    u = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1) * keep.to(v.dtype)  # [B, H, L, d + 1]: v and 1, real keys
    # sum_j u_j phi_k_j^T, [B, H, d + 1, m], as u^T e_k (not e_k^T u) so that e_k's gradient comes back in e_k's own
    # layout: the backward's elementwise passes over a transposed [L, m] gradient run many times slower.
    kv = u.transpose(-1, -2) @ e_k + eps * u.sum(dim=-2)[..., None]
    out = e_q @ kv.transpose(-1, -2) + eps * kv.sum(dim=-1)[..., None, :]  # numerator and normaliser, [B, H, L, d + 1]
    return out[..., :d] / out[..., d:].clamp_min(1e-6)


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

    @torch.compiler.disable  # outside the compiled graph: a guard on the changing int would recompile every step
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


# The release's two Performer kernels (lra_benchmarks/models/performer/performer.py `_ATTENTION_FNS`):
# `generalized` (its default) and `softmax` (FAVOR+, set by listops/configs/performer_base.py only).
RELEASE_KERNELS = ("relu", "softmax")
RELU_EPSILON = 1e-3  # make_fast_generalized_attention's kernel_epsilon
SOFTMAX_STABILISER = 1e-6  # make_fast_softmax_attention's numerical_stabilizer
INT32 = (-(2**31), 2**31 - 1)


def query_seed(q: torch.Tensor) -> int:
    """The release's redraw seed, `ceil(sum(query) * 1e7)` cast to int32 (FastAttentionviaLowRankDecomposition).

    XLA's float -> int conversion saturates (NaN -> 0), so any batch with |sum(q)| > ~215 gets one of the two
    extreme seeds: in practice the "redrawn" features alternate between two fixed draws, picked by the sign of the
    batch's query sum, and an example's features depend on the rest of its batch."""
    seed = torch.ceil(q.float().sum() * 1e7).item()
    if seed != seed:
        return 0
    return int(min(max(seed, INT32[0]), INT32[1]))


@functools.lru_cache(maxsize=16)
def release_features(num_features: int, dim: int, seed: int) -> torch.Tensor:
    """[num_features, dim] as GaussianOrthogonalRandomMatrix(scaling=0) draws them from PRNGKey(seed): the rows
    of blocks of raw QR factors (LAPACK's Householder signs, no sign correction, so e.g. row 0 always has a negative
    first coordinate), each scaled by the length of a Gaussian vector. Cached: the seed rarely changes (see
    `query_seed`). Returns a shared CPU tensor; do not modify it."""
    generator = torch.Generator().manual_seed(seed - INT32[0])
    blocks = -(-num_features // dim)
    q, _ = torch.linalg.qr(torch.randn(blocks, dim, dim, generator=generator, dtype=torch.float64))
    rows = q.transpose(-1, -2).reshape(blocks * dim, dim)[:num_features]
    lengths = torch.randn(num_features, dim, generator=generator, dtype=torch.float64).norm(dim=-1, keepdim=True)
    return (rows * lengths).float()


@functools.lru_cache(maxsize=16)
def release_features_on(num_features: int, dim: int, seed: int, device: torch.device) -> torch.Tensor:
    return release_features(num_features, dim, seed).to(device)


def release_softmax_features(x: torch.Tensor, projection: torch.Tensor, is_query: bool) -> torch.Tensor:
    """nonnegative_softmax_kernel_feature_creator: x [B, H, L, d] -> [B, H, L, m]. The stabiliser is the max over
    the features per query, and over the features and *all* positions (pads included) per (example, head) for keys;
    it is not detached (the release differentiates through the max)."""
    x = x * x.shape[-1] ** -0.25
    wx = x @ projection.transpose(-1, -2)
    half_norm = 0.5 * x.square().sum(dim=-1, keepdim=True)
    stabiliser = wx.amax(dim=-1, keepdim=True) if is_query else wx.amax(dim=(-2, -1), keepdim=True)
    return (torch.exp(wx - half_norm - stabiliser) + SOFTMAX_STABILISER) * projection.shape[0] ** -0.5


def unmasked_linear_attention(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, stabiliser: float):
    """sum_j (phi_q_i . phi_k_j) v_j / R_i over every position j, R_i = sum_j phi_q_i . phi_k_j, where the release
    adds 2 * stabiliser to an R with |R| <= stabiliser (stabiliser 0: plain division)."""
    kv = torch.einsum("bhlf,bhld->bhfd", phi_k, v)
    normaliser = torch.einsum("bhlf,bhf->bhl", phi_q, phi_k.sum(dim=-2))
    if stabiliser:
        normaliser = normaliser + 2 * stabiliser * (normaliser.abs() <= stabiliser)
    return torch.einsum("bhlf,bhfd->bhld", phi_q, kv) / normaliser[..., None]


@register("performer", impl="release")
class PerformerRelease(KernelMixer):
    """Performer as the LRA release computed it (models/performer/performer_attention.py). The padding mask is
    never used (the fast attention ignores the mask bias it is given): every position, pads included, enters the
    keys, values and normaliser, so `uses_mask = False`. `dropout` is not used (nor was it in the release).

    `kernel`:
    - "relu" (the release default, `generalized` with deterministic features, on Text, Retrieval, Image and
      Pathfinder): phi(x) = ReLU(x) + 1e-3 on the raw per-head q and k (no projection, no scaling), normaliser
      without any epsilon. `num_features`, `redraw_every` and `feature_seed` are ignored (nothing is random).
    - "softmax" (ListOps: FAVOR+ with nb_features=2): `num_features` positive orthogonal features per head
      (`release_features`, shared by heads), stabilisers over all positions, eps 1e-6 inside the features.
      `redraw_every=1`: redrawn on every forward pass, training and eval alike, from the seed
      `query_seed(q)` of the batch's queries (as released: in practice two feature sets, see `query_seed`; costs
      one host sync per layer). `redraw_every=0`: fixed features from seed 0, the release's PRNGKey(0), the same in
      every layer. The release had no other schedule, so other values are an error. `feature_seed` is ignored:
      the release's seed does not depend on the layer.
    """

    uses_mask = False

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        num_features: int = 256,
        redraw_every: int = 1000,
        feature_seed: int | None = None,
        kernel: str = "relu",
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if kernel not in RELEASE_KERNELS:
            raise LRAError(f"model.kernel={kernel!r} is not a released Performer kernel; use one of: relu, softmax")
        self.kernel = kernel
        self.num_features = num_features
        self.redraw_every = redraw_every
        if kernel == "softmax":
            if num_features < 1:
                raise LRAError(f"model.num_features={num_features} must be >= 1")
            if redraw_every not in (0, 1):
                raise LRAError(
                    f"model.redraw_every={redraw_every}: the released softmax kernel redraws on every forward pass "
                    "(1) or never (0); set one of them"
                )
            if redraw_every == 0:
                self.register_buffer("projection", release_features(num_features, self.head_dim, 0).clone(), False)

    @torch.compiler.disable  # the seed is data: outside the graph, else every new seed would recompile it
    def redrawn(self, q: torch.Tensor) -> torch.Tensor:
        """The features of the batch's query seed, on q's device (made and copied there once per seed)."""
        return release_features_on(self.num_features, self.head_dim, query_seed(q), q.device)

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kernel == "relu":
            phi_q, phi_k = F.relu(q) + RELU_EPSILON, F.relu(k) + RELU_EPSILON
            return unmasked_linear_attention(phi_q, phi_k, v, 0.0)
        if self.redraw_every:
            projection = self.redrawn(q)
        else:
            projection = self.projection.float()
        phi_q = release_softmax_features(q, projection, is_query=True)
        phi_k = release_softmax_features(k, projection, is_query=False)
        return unmasked_linear_attention(phi_q, phi_k, v, SOFTMAX_STABILISER)
