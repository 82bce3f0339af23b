"""Fourier Transformer (He et al. 2023): exact attention on a sequence shortened by DCT low-pass filters."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.dct import dct_resample
from lra.models.mixers.attention import Attention
from lra.models.mixers.registry import register

# The layers shortened when `shorten_layers` is not given, where the model is that deep.
DEFAULT_SHORTEN = (1, 2)


def kept_length(n: int, keep: float) -> int:
    """ceil(keep * n), at least 1 for a non-empty sequence (the tiny slack absorbs float error: 0.3 * 10 -> 3)."""
    return max(math.ceil(keep * n - 1e-9), int(n > 0))


class SpectralShorten(nn.Module):
    """The spectral filter between layers: DCT-II along the sequence, keep the lowest ceil(keep * N) coefficients,
    inverse DCT at that length (dct_resample), with the CLS token at position 0 kept aside when `cls`.

    Mask choice: the filter runs on the whole padded sequence with pads zeroed, so padding content never reaches real
    positions and one batched FFT serves every example. An example's real tokens (assumed first, as every task pads
    on the right) occupy the first n/N of the sequence, so after resampling they occupy about its first ceil(keep*n)
    positions: that is the new mask. The last of them carry some ringing from the real/zero edge; the output still
    depends on the padded length N, which every task fixes to its max_len.
    """

    def __init__(self, keep: float, cls: bool) -> None:
        super().__init__()
        self.keep = keep
        self.cls = cls

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start = int(self.cls)
        head, head_mask = x[:, :start], mask[:, :start]
        body, body_mask = x[:, start:], mask[:, start:]
        length = kept_length(body.shape[1], self.keep)
        body = dct_resample(body * body_mask[..., None].to(body.dtype), length, dim=1)
        # Per-example ceil(keep * n_real), with the same float slack as kept_length.
        n_real = torch.ceil(body_mask.sum(1).double() * self.keep - 1e-9).clamp(min=0)
        new_mask = torch.arange(length, device=mask.device) < n_real[:, None]
        return torch.cat([head, body], dim=1), torch.cat([head_mask, new_mask], dim=1)


@register("fourier_transformer")
class FourierTransformerAttention(Attention):
    """Exact attention, plus a spectral filter before each layer in `shorten_layers` (negative = from the end).

    The filter sits before its layer, so that layer and all later ones run on the shortened sequence: with `keep`
    p, a length-L input (CLS included) becomes 1 + ceil(p (L - 1)) long. The encoder applies the filters (its
    `resizer` hook); called alone, this is plain attention. Index 0 would filter the embeddings themselves.
    `shorten_layers` None (the default) means layers 1 and 2 of those the model has (none for a 1-layer model, such
    as the Image and Path-X recipes), so one config serves every depth; an explicit list must fit the depth.
    """

    released = False  # not in the LRA release: both impl values compute the same

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        shorten_layers: Sequence[int] | None = None,
        keep: float = 0.5,
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if not 0.0 < keep <= 1.0:
            raise LRAError(f"model.keep={keep} must be in (0, 1]: the fraction of DCT coefficients kept")
        self.shorten_layers = None if shorten_layers is None else list(shorten_layers)
        self.keep = keep

    def resizer(self, layer: int, n_layers: int, cls: bool) -> SpectralShorten | None:
        """The filter to apply before layer `layer` of `n_layers`, or None."""
        if self.shorten_layers is None:
            return SpectralShorten(self.keep, cls) if layer in DEFAULT_SHORTEN else None
        for index in self.shorten_layers:
            if not -n_layers <= index < n_layers:
                raise LRAError(f"model.shorten_layers has {index}, outside a {n_layers}-layer model")
        chosen = {index % n_layers for index in self.shorten_layers}
        return SpectralShorten(self.keep, cls) if layer in chosen else None
