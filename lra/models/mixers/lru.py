"""The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for Long Sequences").

A diagonal complex linear recurrence per state n:

    x_k = lambda * x_{k-1} + gamma * (B u_k),   y_k = Re(C x_k) + D u_k,

with lambda = exp(-exp(nu) + i exp(theta)), so |lambda| = exp(-exp(nu)) < 1 for any nu (stable by construction),
initialised uniformly on the ring r_min <= |lambda| <= r_max, and gamma = sqrt(1 - |lambda|^2) (learned from that
start, as the paper's code does) so that the state's variance does not grow with 1/(1 - |lambda|^2).

The recurrence is a scan of the associative operator (a1, b1) . (a2, b2) = (a1 a2, a2 b1 + b2) in plain PyTorch:
blocks of 8 positions are scanned all at once, then the same scan runs over the blocks' end states, recursively
(`parallel_scan`): O(L) work and memory, about 8 log_8(L) dependent steps, no step over the whole sequence.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.mixers.gated_ssm import GatedSSMMixer
from lra.models.mixers.registry import register

CHUNK = 8  # positions per block of the two-level scan (4-8 timed fastest on CPU at L 16K)


def block_scan(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The scan inside every block at once, along axis -2: a [M, C, N] broadcasts against b [B, M, C, N].

    C (a few positions) sequential steps, each vectorised over every block, batch and state. Through `unbind`
    and `stack` the backward allocates once; slicing a tensor per step (or per doubling step) would make a full-size
    zero gradient per slice. Returns the prefix products of a within each block, and the states."""
    a_steps, b_steps = a.unbind(-2), b.unbind(-2)
    a_prefix, x = [a_steps[0]], [b_steps[0]]
    for a_k, b_k in zip(a_steps[1:], b_steps[1:], strict=True):
        x.append(a_k * x[-1] + b_k)
        a_prefix.append(a_k * a_prefix[-1])
    return torch.stack(a_prefix, -2), torch.stack(x, -2)


def parallel_scan(a: torch.Tensor, b: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """x_k = a_k x_{k-1} + b_k from x_{-1} = 0, for a [L, N] (shared over the batch) and b [B, L, N].

    A scan of the associative operator above, in two levels: every block of `chunk` positions is scanned by itself
    (`block_scan`, all blocks at once), then the same scan, recursively, runs over the blocks' L / chunk end states,
    and each block adds its incoming state times its prefix product of a. Depth about chunk * log_chunk(L) steps,
    O(L) work and memory; no step walks the whole sequence."""
    length = b.shape[1]
    if length <= chunk:
        return block_scan(a[None], b[:, None])[1][:, 0]
    pad = -length % chunk
    if pad:  # a = 1, b = 0 past the end: the state is carried, nothing added
        a = torch.cat([a, a.new_ones(pad, a.shape[-1])])
        b = torch.cat([b, b.new_zeros(b.shape[0], pad, b.shape[-1])], dim=1)
    blocks = a.shape[0] // chunk
    a_in, x_in = block_scan(a.reshape(blocks, chunk, -1), b.reshape(b.shape[0], blocks, chunk, -1))
    ends = parallel_scan(a_in[:, -1], x_in[:, :, -1], chunk)  # [B, M, N]: the state at each block's end
    entering = torch.cat([torch.zeros_like(ends[:, :1]), ends[:, :-1]], dim=1)  # [B, M, N]: the state before each
    x = x_in + a_in * entering[:, :, None]  # [B, M, C, N]
    return x.flatten(1, 2)[:, :length]


def ring_init(n: int, r_min: float, r_max: float, max_phase: float) -> tuple[torch.Tensor, torch.Tensor]:
    """nu, theta logs [n] with |lambda|^2 uniform on [r_min^2, r_max^2] and phase uniform on [0, max_phase]."""
    u1, u2 = torch.rand(n).clamp_min(1e-6), torch.rand(n).clamp_min(1e-6)
    nu_log = torch.log(-0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2))
    theta_log = torch.log(max_phase * u2)
    return nu_log, theta_log


@register("lru")
class LRUMixer(GatedSSMMixer):
    """LRU layer: y = GLU(W drop(GELU(y_fwd + y_bwd + D u))), y_dir = Re(C_dir x_dir); `bidirectional=False` keeps the
    forward scan only (the LRU paper's ListOps, Text, Retrieval and sCIFAR models).

    The two directions are summed (each has its own lambda, gamma, B, C; one shared D). The mask is used: padded
    inputs are zeroed before both scans. Appended pads come after every real position in the forward scan, and
    first in the reversed one, where a zero input keeps the state at exactly 0: real outputs never see them.
    Options: `d_state` (complex states per direction), `r_min`, `r_max` (the init ring), `max_phase` (the init
    phase range; the paper uses pi/10 on Path-X), `bidirectional`. `ssm_params` (nu, theta, gamma and B) train
    with `optim.ssm_lr` and no weight decay, as the paper's appendix D.2 trains them.
    """

    ssm_params = ("nu_log", "theta_log", "gamma_log", "b")

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        d_state: int = 256,
        r_min: float = 0.9,
        r_max: float = 0.999,
        max_phase: float = 2 * math.pi,
        bidirectional: bool = True,
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if not 0.0 <= r_min < r_max < 1.0:
            raise LRAError(f"model.r_min={r_min} and model.r_max={r_max} must satisfy 0 <= r_min < r_max < 1")
        self.d_state, self.r_min, self.r_max, self.bidirectional = d_state, r_min, r_max, bidirectional
        h, n, dirs = d_model, d_state, 1 + int(bidirectional)
        nu, theta = zip(*(ring_init(n, r_min, r_max, max_phase) for _ in range(dirs)), strict=True)
        self.nu_log = nn.Parameter(torch.stack(nu))  # [dirs, N]; index 0 forward, 1 backward
        self.theta_log = nn.Parameter(torch.stack(theta))  # [dirs, N]
        modulus = torch.exp(-torch.exp(self.nu_log.detach()))
        self.gamma_log = nn.Parameter(torch.log(torch.sqrt(1 - modulus**2).clamp_min(1e-8)))  # [dirs, N]
        # Glorot-like complex inits of the paper: B ~ N(0, 1/(2H)) per part, C ~ N(0, 1/N) per part.
        self.b = nn.Parameter(torch.randn(dirs, 2, n, h) / math.sqrt(2 * h))  # [dirs, re/im, N, H]
        self.c = nn.Parameter(torch.randn(dirs, 2, h, n) / math.sqrt(n))  # [dirs, re/im, H, N]
        self.d = nn.Parameter(torch.randn(h))
        self.build_output(h, dropout)

    def lam(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """lambda [dirs, N] complex."""
        return torch.exp(torch.complex(-torch.exp(self.nu_log.to(dtype)), torch.exp(self.theta_log.to(dtype))))

    def direction(self, u: torch.Tensor, index: int) -> torch.Tensor:
        """Re(C x) of one direction's scan over u [B, L, H] (in time order) -> [B, L, H]."""
        dtype, (batch, length, h), n = u.dtype, u.shape, self.d_state
        b, c = self.b[index].to(dtype), self.c[index].to(dtype)  # [2, N, H], [2, H, N]: real and imaginary parts
        gamma = torch.exp(self.gamma_log[index].to(dtype))  # [N]
        # One real matmul each way: the weights hold (re, im) interleaved per state, the layout of a complex tensor,
        # so the projections' outputs and inputs are complex tensors viewed as real ones (no copies).
        w_in = (b * gamma[:, None]).permute(2, 1, 0).reshape(h, 2 * n)  # [H, N, 2] -> [H, 2N]
        bu = torch.view_as_complex((u @ w_in).view(batch, length, n, 2))  # gamma B u: [B, L, N] complex
        lam = self.lam(dtype)[index].expand(length, -1)  # [L, N]
        x = parallel_scan(lam, bu)  # [B, L, N]
        if self.window is not None:  # the probe: sum_{l <= w} lam^l bu_{k-l} = x_k - lam^(w+1) x_{k-w-1}
            shift = min(self.window + 1, length)
            earlier = torch.cat([x.new_zeros(batch, shift, n), x[:, : length - shift]], dim=1)
            x = x - lam[0] ** (self.window + 1) * earlier
        w_out = torch.stack([c[0], -c[1]], dim=-1).reshape(h, 2 * n)  # Re(C x) = C_re x_re - C_im x_im: [H, 2N]
        return torch.view_as_real(x).flatten(-2) @ w_out.T

    def restrict(self, window: int | None) -> bool:
        self.window = window
        return True

    def ssm(self, u: torch.Tensor) -> torch.Tensor:
        """Both scans (or the forward one) plus skip, u [B, L, H] -> [B, L, H], before GELU and GLU."""
        v = u.to(torch.float64 if u.dtype == torch.float64 else torch.float32)
        y = self.direction(v, 0) + self.d.to(v.dtype) * v
        if self.bidirectional:
            y = y + self.direction(v.flip(1), 1).flip(1)
        return y.to(u.dtype)

    def extra_repr(self) -> str:
        return f"d_state={self.d_state}, r_min={self.r_min}, r_max={self.r_max}, bidirectional={self.bidirectional}"
