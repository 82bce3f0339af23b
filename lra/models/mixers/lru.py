"""The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for Long Sequences").

A diagonal complex linear recurrence per state n:

    x_k = lambda * x_{k-1} + gamma * (B u_k),   y_k = Re(C x_k) + D u_k,

with lambda = exp(-exp(nu) + i exp(theta)), so |lambda| = exp(-exp(nu)) < 1 for any nu (stable by construction),
initialised uniformly on the ring r_min <= |lambda| <= r_max, and gamma = sqrt(1 - |lambda|^2) (learned from that
start, as the paper's code does) so that the state's variance does not grow with 1/(1 - |lambda|^2).

The recurrence is a scan of the associative operator (a1, b1) . (a2, b2) = (a1 a2, a2 b1 + b2), computed in
ceil(log2 L) Hillis-Steele doubling steps in plain PyTorch, O(L log L) work, no Python loop over time.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.mixers.base import Mixer
from lra.models.mixers.registry import register


def parallel_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x_k = a_k x_{k-1} + b_k from x_{-1} = 0, for a [L, N] (shared over the batch) and b [B, L, N].

    Step j combines each position with the one 2^j back: afterwards position k holds the pair for the window
    (k - 2^(j+1), k], so after ceil(log2 L) steps it holds the whole prefix.
    """
    length = b.shape[1]
    shift = 1
    while shift < length:
        b = torch.cat([b[:, :shift], b[:, shift:] + a[shift:] * b[:, :-shift]], dim=1)
        a = torch.cat([a[:shift], a[shift:] * a[:-shift]], dim=0)
        shift *= 2
    return b


def ring_init(n: int, r_min: float, r_max: float, max_phase: float) -> tuple[torch.Tensor, torch.Tensor]:
    """nu, theta logs [n] with |lambda|^2 uniform on [r_min^2, r_max^2] and phase uniform on [0, max_phase]."""
    u1, u2 = torch.rand(n).clamp_min(1e-6), torch.rand(n).clamp_min(1e-6)
    nu_log = torch.log(-0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2))
    theta_log = torch.log(max_phase * u2)
    return nu_log, theta_log


@register("lru")
class LRUMixer(Mixer):
    """LRU layer: y = GLU(W drop(GELU(y_fwd + y_bwd + D u))), y_dir = Re(C_dir x_dir); `bidirectional=False` keeps the
    forward scan only (the LRU paper's ListOps, Text, Retrieval and sCIFAR models).

    The two directions are summed (each has its own lambda, gamma, B, C; one shared D). The mask is used: padded
    inputs are zeroed before both scans. Appended pads come after every real position in the forward scan, and
    first in the reversed one, where a zero input keeps the state at exactly 0: real outputs never see them.
    Options: `d_state` (complex states per direction), `r_min`, `r_max` (the init ring), `max_phase` (the init
    phase range; the paper uses pi/10 on Path-X), `bidirectional`. `ssm_params` (nu, theta, gamma and B) train
    with `optim.ssm_lr` and no weight decay, as the paper's appendix D.2 trains them.
    """

    uses_heads = False
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
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)  # between the activation and the GLU, as the S4 block and the LRU paper
        self.out = nn.Sequential(nn.Linear(h, 2 * h), nn.GLU(dim=-1))

    def lam(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """lambda [dirs, N] complex."""
        return torch.exp(torch.complex(-torch.exp(self.nu_log.to(dtype)), torch.exp(self.theta_log.to(dtype))))

    def direction(self, u: torch.Tensor, index: int) -> torch.Tensor:
        """Re(C x) of one direction's scan over u [B, L, H] (in time order) -> [B, L, H]."""
        dtype = u.dtype
        b, c = self.b[index].to(dtype), self.c[index].to(dtype)
        gamma = torch.exp(self.gamma_log[index].to(dtype))  # [N]
        bu = torch.complex(u @ b[0].T, u @ b[1].T) * gamma  # [B, L, N]
        lam = self.lam(dtype)[index].expand(u.shape[1], -1)  # [L, N]
        x = parallel_scan(lam, bu)  # [B, L, N]
        return x.real @ c[0].T - x.imag @ c[1].T

    def ssm(self, u: torch.Tensor) -> torch.Tensor:
        """Both scans (or the forward one) plus skip, u [B, L, H] -> [B, L, H], before GELU and GLU."""
        v = u.to(torch.float64 if u.dtype == torch.float64 else torch.float32)
        y = self.direction(v, 0) + self.d.to(v.dtype) * v
        if self.bidirectional:
            y = y + self.direction(v.flip(1), 1).flip(1)
        return y.to(u.dtype)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x * mask[..., None].to(x.dtype)  # [B, L, D]: pads are zeros for both directions
        device_type = x.device.type
        if torch.amp.is_autocast_available(device_type):
            with torch.autocast(device_type, enabled=False):  # the scan runs in float32 complex
                y = self.ssm(x)
        else:
            y = self.ssm(x)
        return self.out(self.drop(self.act(y)))

    def extra_repr(self) -> str:
        return f"d_state={self.d_state}, r_min={self.r_min}, r_max={self.r_max}, bidirectional={self.bidirectional}"
