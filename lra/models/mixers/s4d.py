"""S4D (Gu et al. 2022, "On the Parameterization and Initialization of Diagonal State Space Models") as a mixer.

Each channel h runs a diagonal complex state-space model x'(t) = A x + B u, y = Re(C x) + D u, discretised by
zero-order hold with its own learned step dt_h. Unrolled, the layer is a long convolution with the kernel

    K_l = 2 Re( sum_n C_n B_n (exp(dt A_n) - 1) / A_n * exp(dt A_n l) ),   l = 0 .. L-1,

one Vandermonde product (computed blockwise, see `s4d_kernel`). Only d_state/2 complex modes are stored: A, B,
C of a real system come in conjugate pairs, so the pair's sum is 2 Re of one of them. The kernel is applied by FFT
convolution, zero-padded to 2L so that it is linear, not circular. Classification is bidirectional: a second kernel
runs over the flipped sequence; both kernels and the skip D are laid out as one two-sided kernel, so a layer costs
one FFT convolution.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.mixers.gated_ssm import GatedSSMMixer
from lra.models.mixers.registry import register

INITS = ("lin", "inv")
DT_LRS = ("ssm", "lr")  # the step size log_dt trains at optim.ssm_lr or at optim.lr


def init_a(d_model: int, d_state: int, init: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts [d_model, d_state // 2] of A by S4D-Lin or S4D-Inv (the paper's section 4)."""
    n = torch.arange(d_state // 2, dtype=torch.float64)
    if init == "lin":  # A_n = -1/2 + i pi n
        imag = math.pi * n
    else:  # A_n = -1/2 + i N/pi (N/(2n+1) - 1)
        imag = d_state / math.pi * (d_state / (2 * n + 1) - 1)
    real = torch.full_like(imag, -0.5)
    return real.expand(d_model, -1).clone(), imag.expand(d_model, -1).clone()


def s4d_kernel(
    dt: torch.Tensor, a: torch.Tensor, bc: torch.Tensor, length: int
) -> torch.Tensor:
    """dt [..., H], a and bc = B*C complex [..., H, N] -> real kernel [..., H, length] (ZOH, conjugate pairs).

    The Vandermonde product sum_n coef_n z_n^l (z = exp(dt A)) is never materialised as [H, N, L]: with l = c m + j
    for blocks of c ~ sqrt(L) positions, z^l = z^(c m) z^j, so the kernel is a batched real matmul of an [M, N] and
    an [N, c] factor per channel. Memory O(H N sqrt(L)) instead of O(H N L), and the work goes to BLAS.
    """
    dta = dt[..., None] * a  # [..., H, N]
    coef = bc * torch.expm1(dta) / a  # [..., H, N]
    block = math.isqrt(length - 1) + 1  # c, with c * c >= length
    blocks = -(-length // block)  # M
    positions = torch.arange(block, device=a.device, dtype=dt.dtype)
    inner = torch.exp(dta[..., None] * positions)  # [..., H, N, c]: z^j
    outer = coef[..., None] * torch.exp(dta[..., None] * (block * positions[:blocks]))  # [..., H, N, M]: coef z^(c m)
    k = outer.real.transpose(-1, -2) @ inner.real - outer.imag.transpose(-1, -2) @ inner.imag  # [..., H, M, c]
    return 2 * k.flatten(-2)[..., :length]


def two_sided_kernel(k: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Forward and backward kernels k [2, H, L] and skip d [H] -> one kernel [H, 2L] over lags -(L-1) .. L-1.

    In a circular convolution of size 2L, lag j >= 0 sits at index j and lag -j at index 2L - j; index L is
    never reached by inputs of length L and stays 0. Lag 0 carries both kernels' first taps and the skip D.
    """
    fwd, bwd = k[0], k[1]  # [H, L] each
    zero = fwd.new_zeros(fwd.shape[0], 1)
    return torch.cat([fwd[:, :1] + bwd[:, :1] + d[:, None], fwd[:, 1:], zero, bwd[:, 1:].flip(-1)], dim=-1)


def fft_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Linear convolution along the last axis: u [..., H, L], k [H, 2L] two-sided (above) -> [..., H, L]."""
    length = u.shape[-1]
    spec = torch.fft.rfft(u, n=2 * length) * torch.fft.rfft(k, n=2 * length)
    return torch.fft.irfft(spec, n=2 * length)[..., :length]


@register("s4d")
class S4DMixer(GatedSSMMixer):
    """Bidirectional S4D layer: y = GLU(W drop(GELU(K_fwd * u + flip(K_bwd * flip(u)) + D u))).

    The mask is used: padded inputs are zeroed before both convolutions, so they reach no real position in either
    direction (the forward kernel only looks back; the backward one sees the pads as zeros). Options: `d_state`
    (the real state size N; N/2 complex modes are stored), `ssm_init` = lin | inv (S4D-Lin or S4D-Inv A),
    `dt_min`, `dt_max` (the log-uniform range of the initial step), `dt_lr`. `ssm_params` (log_dt, A, B) train
    with `optim.ssm_lr` and no weight decay, as the authors train them; C, D and the output projection do not.
    `dt_lr=lr` moves the step to `optim.lr`, still without weight decay: the S4 ListOps, Text and Retrieval recipes
    set `lr.dt: null` (the main lr) and 0.001 only for A and B.
    """

    ssm_params = ("log_dt", "a_log_real", "a_imag", "b")

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        d_state: int = 64,
        ssm_init: str = "lin",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_lr: str = "ssm",
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if ssm_init not in INITS:
            raise LRAError(f"model.ssm_init={ssm_init!r} is not an S4D init; use one of: {', '.join(INITS)}")
        if d_state < 2 or d_state % 2:
            raise LRAError(f"model.d_state={d_state} must be an even number >= 2 (conjugate pairs)")
        if dt_lr not in DT_LRS:
            raise LRAError(f"model.dt_lr={dt_lr!r} is not a step-size lr; use one of: {', '.join(DT_LRS)}")
        if dt_lr == "lr":
            self.ssm_params = tuple(p for p in self.ssm_params if p != "log_dt")
            self.no_decay_params = ("log_dt",)
        self.d_state, self.ssm_init = d_state, ssm_init
        h, n = d_model, d_state // 2
        # Index 0 of every parameter is the forward direction, 1 the backward one.
        log_dt = torch.rand(2, h) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        a_real, a_imag = init_a(h, d_state, ssm_init)
        self.log_dt = nn.Parameter(log_dt)  # [2, H]
        self.a_log_real = nn.Parameter(torch.log(-a_real).float().expand(2, h, n).clone())  # Re A = -exp(.) < 0
        self.a_imag = nn.Parameter(a_imag.float().expand(2, h, n).clone())  # [2, H, N]
        self.b = nn.Parameter(torch.stack([torch.ones(2, h, n), torch.zeros(2, h, n)], -1))  # complex as [..., 2]
        self.c = nn.Parameter(torch.randn(2, h, n, 2) * math.sqrt(0.5))  # complex N(0, 1)
        self.d = nn.Parameter(torch.randn(h))
        self.build_output(h, dropout)

    def kernel(self, length: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Both directions' kernels [2, H, length], computed in `dtype` (float32 or float64)."""
        a = torch.complex(-torch.exp(self.a_log_real.to(dtype)), self.a_imag.to(dtype))
        bc = torch.view_as_complex(self.b.to(dtype).contiguous()) * torch.view_as_complex(self.c.to(dtype).contiguous())
        return s4d_kernel(torch.exp(self.log_dt.to(dtype)), a, bc, length)

    def restrict(self, window: int | None) -> bool:
        self.window = window
        return True

    def ssm(self, u: torch.Tensor) -> torch.Tensor:
        """The bidirectional convolution plus skip, u [B, L, H] -> [B, L, H], before GELU and GLU."""
        dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
        v = u.to(dtype).transpose(1, 2).contiguous()  # [B, H, L]: FFTs along the contiguous axis are fastest
        k = self.kernel(v.shape[-1], dtype)  # [2, H, L]
        if self.window is not None:  # the probe: both directions' taps at lags > window cut
            k = k * (torch.arange(k.shape[-1], device=k.device) <= self.window)
        k = two_sided_kernel(k, self.d.to(dtype))  # [H, 2L]
        return fft_conv(v, k).transpose(1, 2).to(u.dtype)  # one FFT convolution for both directions and the skip

    def extra_repr(self) -> str:
        return f"d_state={self.d_state}, ssm_init={self.ssm_init!r}"
