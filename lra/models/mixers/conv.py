"""A depthwise 1-D convolution token mixer: the minimal short-range-only model.

Miralles-Gonzalez et al. (arXiv 2501.14850) find a convolution with kernel 5 gets about 98% of Mega's accuracy on
LRA's two text tasks; this mixer is that baseline, so that "how much of a task is long-range" can be measured here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lra.errors import LRAError
from lra.models.mixers.base import Mixer
from lra.models.mixers.registry import register


@register("conv")
class ConvMixer(Mixer):
    """y = W conv(x * mask): each channel convolved with its own `kernel`-tap filter centred on the position (both
    directions: position i sees i - kernel // 2 .. i + kernel // 2), then one linear map across channels.

    The mask is used: pads are zeroed before the convolution, so they reach no real position (the sequence ends
    are zero-padded the same way). `kernel` must be odd, so the window is centred.
    """

    uses_heads = False

    def __init__(self, d_model: int, n_heads: int, max_len: int, dropout: float, kernel: int = 5, **base) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if kernel < 1 or kernel % 2 == 0:
            raise LRAError(f"model.kernel={kernel} must be an odd positive integer (a window centred on each token)")
        self.kernel = kernel
        self.conv = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x * mask[..., None].to(x.dtype)  # [B, L, D]: pads are zeros, as the sequence ends
        weight = self.conv.weight  # [D, 1, kernel]
        if self.window is not None:  # the probe: taps beyond the window cut (none when kernel // 2 <= window)
            offsets = torch.arange(self.kernel, device=x.device) - self.kernel // 2
            weight = weight * (offsets.abs() <= self.window)
        y = F.conv1d(x.transpose(1, 2), weight, self.conv.bias, padding=self.kernel // 2, groups=x.shape[-1])
        return self.out(y.transpose(1, 2))  # [B, L, D]

    def restrict(self, window: int | None) -> bool:
        self.window = window
        return True

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}"
