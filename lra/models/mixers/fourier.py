"""FNet's parameter-free Fourier mixing (Lee-Thorp et al. 2021): y = Re(FFT_seq(FFT_hidden(x))).

Three ways to compute the same linear map, all in float32 (float64 for float64 input) whatever the input dtype:

- `rfft`: x is real, so the 2-D spectrum is Hermitian (Y[-l, -k] = conj Y[l, k]). `rfft2` gives the hidden
  frequencies k <= D/2 for about half the work of `fft2`; the others follow from Re Y[l, D-k] = Re Y[(-l) mod L, k],
  one gather with a cached index. On CPU the batch is cut into chunks small enough that the spectrum is still in
  cache when it is gathered.
- `matmul`: Re(F_L x F_D) = C_L x C_D - S_L x S_D with cached real cos/sin matrices: O(L^2 D + L D^2) but all
  matrix products, for accelerators at short lengths.
- `fft`: the plain baseline `fftn(x).real`.

The map is linear and self-adjoint (both DFT matrices are symmetric), so its backward is the same map applied to
the output gradient: a custom autograd Function, no autograd through complex tensors.
"""

from __future__ import annotations

import functools
import math

import torch

from lra.errors import LRAError
from lra.models.mixers.base import Mixer
from lra.models.mixers.registry import register
from lra.models.precision import no_autocast

PATHS = ("auto", "rfft", "matmul", "fft")

# `auto` uses `matmul` up to this sequence length (and hidden size), per device type. Measured on CPU (2-core AMD
# EPYC, torch 2.13 + MKL): `rfft` won at every L >= 16, so never. CUDA: an estimate from FLOP and byte counts for
# float32 (not measured here); re-measure with `python -m lra.bench.mixing --device cuda` and adjust.
MATMUL_MAX = {"cpu": (0, 0), "cuda": (256, 1024)}

# CPU `rfft`: elements of x per chunk (4 MiB of float32), so that a chunk's spectrum is still in cache when it is
# gathered and its buffer is reused by the next chunk; at least one example per thread. Measured at L=4096, D=256
# on 1 thread: 1 Mi elements beat 2 Mi, 8 Mi and no chunking.
CHUNK_ELEMENTS = 1 << 20


def choose_path(device: torch.device, length: int, hidden: int) -> str:
    """The fastest path for this device and shape, by the rule in `MATMUL_MAX`."""
    max_len, max_hidden = MATMUL_MAX.get(device.type, (0, 0))
    return "matmul" if length <= max_len and hidden <= max_hidden else "rfft"


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (for gradcheck); everything else runs in float32 (torch.fft takes no bf16)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


@functools.lru_cache(maxsize=4)
def rebuild_index(length: int, hidden: int, device: torch.device) -> torch.Tensor:
    """Flat index into view_as_real(rfft2(x)) [L, K, 2] that gives Re Y [L, D] (K = D//2 + 1).

    Column j < K reads Re Y[l, j]; column j >= K reads Re Y[(-l) mod L, D - j], by Hermitian symmetry.
    """
    half = hidden // 2 + 1
    rows = torch.arange(length, device=device)[:, None]
    cols = torch.arange(hidden, device=device)[None, :]
    upper = cols < half
    src_row = torch.where(upper, rows, (-rows) % length)
    src_col = torch.where(upper, cols, hidden - cols)
    return ((src_row * half + src_col) * 2).reshape(1, -1)


def dft_cos_sin(n: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of 2 pi j k / n, with j k reduced mod n in integers so large n keeps full accuracy."""
    idx = torch.arange(n, dtype=torch.int64)
    angle = (torch.outer(idx, idx) % n).to(torch.float64) * (2 * math.pi / n)
    return torch.cos(angle).to(device, dtype), torch.sin(angle).to(device, dtype)


@functools.lru_cache(maxsize=4)
def dft_matrices(
    length: int, hidden: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[C_L; S_L] stacked to [2L, L], and C_D, S_D [D, D]: what `matmul` multiplies by."""
    cos_l, sin_l = dft_cos_sin(length, dtype, device)
    cos_d, sin_d = dft_cos_sin(hidden, dtype, device)
    return torch.cat([cos_l, sin_l], 0), cos_d, sin_d


@functools.lru_cache(maxsize=4)
def hidden_cosines(hidden: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """C_D [D, D], cos(2 pi j k / D): the real part of the DFT over the hidden axis (FourierMixer.first_row)."""
    return dft_cos_sin(hidden, dtype, device)[0]


def mix_rfft(x: torch.Tensor) -> torch.Tensor:
    """x [N, L, D] -> Re Y [N, L, D]: rfft2, then one gather rebuilds the hidden frequencies above D/2."""
    n, length, hidden = x.shape
    index = rebuild_index(length, hidden, x.device)
    if torch.compiler.is_compiling():  # one graph: the compiler fuses the gather; chunking would break the graph
        spectrum = torch.view_as_real(torch.fft.rfft2(x)).reshape(n, -1)
        return torch.gather(spectrum, 1, index.expand(n, -1)).view_as(x)
    out = torch.empty_like(x)
    chunk = n if x.device.type != "cpu" else max(torch.get_num_threads(), CHUNK_ELEMENTS // max(1, length * hidden))
    for start in range(0, n, chunk):
        part = x[start : start + chunk]
        m = part.shape[0]
        spectrum = torch.view_as_real(torch.fft.rfft2(part)).reshape(m, -1)
        torch.gather(spectrum, 1, index.expand(m, -1), out=out[start : start + chunk].view(m, -1))
    return out


def mix_matmul(x: torch.Tensor) -> torch.Tensor:
    """x [N, L, D] -> C_L x C_D - S_L x S_D, as one [2L, L] product then two batched [D, D] products."""
    n, length, hidden = x.shape
    left, cos_d, sin_d = dft_matrices(length, hidden, x.device, x.dtype)
    u = torch.matmul(left, x)  # [N, 2L, D] = [C_L x; S_L x]
    out = torch.matmul(u[:, :length], cos_d)
    return out.baddbmm_(u[:, length:], sin_d.expand(n, hidden, hidden), alpha=-1)


def mix_fft(x: torch.Tensor) -> torch.Tensor:
    """The baseline: a full complex 2-D FFT, real part."""
    return torch.fft.fftn(x, dim=(-2, -1)).real.contiguous()


KERNELS = {"rfft": mix_rfft, "matmul": mix_matmul, "fft": mix_fft}


def apply_path(x: torch.Tensor, path: str) -> torch.Tensor:
    """Run one path on real x [..., L, D] in the compute dtype, autocast off; returns x's dtype."""
    shape = x.shape
    flat = x.reshape(-1, *shape[-2:]).to(compute_dtype(x.dtype)).contiguous()
    with no_autocast(flat):
        y = KERNELS[path](flat)
    return y.to(x.dtype).view(shape)


class FourierMixFunction(torch.autograd.Function):
    """x -> Re(F_L x F_D). Linear and self-adjoint, so backward applies the same map to the gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, path: str) -> torch.Tensor:
        ctx.path = path
        return apply_path(x, path)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return apply_path(grad, ctx.path), None


def fourier_mix(x: torch.Tensor, path: str = "auto") -> torch.Tensor:
    """Re(FFT_seq(FFT_hidden(x))) for real x[..., L, D]; float32 inside (torch.fft takes no bf16), input dtype out.

    `path` is one of `PATHS`; `auto` picks by device and shape (`choose_path`).
    """
    if x.is_complex() or x.dim() < 2:
        raise ValueError(f"fourier_mix needs a real tensor [..., L, D], got {x.dtype} of shape {tuple(x.shape)}")
    if path == "auto":
        path = choose_path(x.device, x.shape[-2], x.shape[-1])
    elif path not in KERNELS:
        raise ValueError(f"fourier_mix path must be one of {PATHS}, got {path!r}")
    return FourierMixFunction.apply(x, path)


@register("fourier")
class FourierMixer(Mixer):
    """FNet mixing. It cannot use the mask: padded positions are mixed in like tokens, as in the paper.

    The encoder's `zero_pad` switch zeroes them first; either way every task pads to its fixed `max_len`,
    so an example's output does not depend on the rest of its batch. Option `path`: auto | rfft | matmul | fft.
    """

    uses_mask = False
    uses_heads = False

    def __init__(self, d_model: int, n_heads: int, max_len: int, dropout: float, path: str = "auto", **base) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if path not in PATHS:
            raise LRAError(f"model.path={path!r} is not a Fourier mixing path; use one of: {', '.join(PATHS)}")
        self.path = path

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return fourier_mix(x, self.path)

    def first_row(self, x: torch.Tensor, mask: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        """Row 0 of Re(FFT_seq(FFT_hidden x)) is Re(FFT_hidden(sum over positions)): one [D, D] cosine product
        of the column sums, O(L D) instead of the whole mix. x [B, L, D] -> [B, 1, D]."""
        total = x.to(compute_dtype(x.dtype)).sum(1, keepdim=True)  # [B, 1, D]
        with no_autocast(total):
            y = total @ hidden_cosines(x.shape[-1], x.device, total.dtype)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"path={self.path!r}"
