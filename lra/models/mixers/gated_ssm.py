"""What S4D and the LRU share around their state-space core: pads zeroed first, the core in float32 or float64
outside autocast, then GELU -> dropout -> GLU (the S4 block's output, and the LRU paper's)."""

from __future__ import annotations

import torch
from torch import nn

from lra.models.mixers.base import Mixer
from lra.models.precision import no_autocast


class GatedSSMMixer(Mixer):
    """Base of the state-space mixers: y = GLU(W drop(GELU(ssm(x * mask)))). A subclass defines `ssm(u[B, L, H])
    -> [B, L, H]` and calls `build_output(d_model, dropout)` at the end of its `__init__` (after its own parameters,
    so that their random draws come first). The mask is used: padded inputs are zeros for the core, so it must only
    carry them forward in time to keep appended pads away from real positions."""

    uses_heads = False

    def build_output(self, d_model: int, dropout: float) -> None:
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)  # between the activation and the GLU, as the S4 block and the LRU paper
        self.out = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GLU(dim=-1))

    def ssm(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x * mask[..., None].to(x.dtype)  # [B, L, D]: pads are zeros for both directions
        with no_autocast(x):  # torch.fft and the complex scan take no bf16
            y = self.ssm(x)
        return self.out(self.drop(self.act(y)))
