"""Fourier Transformer (He et al. 2023): exact attention on a sequence shortened by DCT low-pass filters.

Two classes: the method as the paper describes it (`FourierTransformerAttention`: filters on the residual stream
between layers, pads zeroed, masks carried on), and what the authors' LRA code computed, behind their published LRA
row (`FourierTransformerRelease`, impl=release; docs/reference.md#fourier-transformer).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.dct import dct, dct_resample, idct
from lra.models.mixers.attention import Attention, key_padding_mask
from lra.models.mixers.registry import register
from lra.models.precision import no_autocast


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

    # The layers shortened when `shorten_layers` is not given (where the model is that deep), and the kept fraction
    # when `keep` is not given.
    default_layers: tuple[int, ...] = (1, 2)
    default_keep: float = 0.5

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        shorten_layers: Sequence[int] | None = None,
        keep: float | None = None,
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        keep = self.default_keep if keep is None else keep
        if not 0.0 < keep <= 1.0:
            raise LRAError(f"model.keep={keep} must be in (0, 1]: the fraction of DCT coefficients kept")
        self.shorten_layers = None if shorten_layers is None else list(shorten_layers)
        self.keep = keep

    def resizer(self, layer: int, n_layers: int, cls: bool) -> nn.Module | None:
        """The filter layer `layer` of `n_layers` applies, or None."""
        if self.shorten_layers is None:
            return self.filter(cls) if layer in self.default_layers else None
        for index in self.shorten_layers:
            if not -n_layers <= index < n_layers:
                raise LRAError(f"model.shorten_layers has {index}, outside a {n_layers}-layer model")
        chosen = {index % n_layers for index in self.shorten_layers}
        return self.filter(cls) if layer in chosen else None

    def filter(self, cls: bool) -> nn.Module:
        return SpectralShorten(self.keep, cls)


class CodeShorten(nn.Module):
    """Layer 0 of the authors' LRA code (attention_dct.py), on the block's normalised input [B, T, D] (placement
    "normed": the result is also the residual): in float32 with autocast off, the CLS row set aside, an orthonormal
    DCT-II of the rest along the sequence, the first M = ceil(keep * T) coefficients kept (T counts the CLS), an
    orthonormal inverse DCT at length M, unrescaled (a constant c comes back as c sqrt((T - 1) / M)), the CLS put
    back: [B, 1 + M, D]. Pads are transformed like tokens and the mask is dropped (all True), as there.
    """

    placement = "normed"

    def __init__(self, keep: float, cls: bool) -> None:
        super().__init__()
        self.keep = keep
        self.cls = cls

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start = int(self.cls)
        length = min(math.ceil(x.shape[1] * self.keep), x.shape[1] - start)
        with no_autocast(x):
            x = x.to(torch.promote_types(x.dtype, torch.float32))
            short = idct(dct(x[:, start:], dim=1).narrow(1, 0, length), dim=1)  # [B, M, D]
            x = torch.cat([x[:, :start], short], dim=1)
        return x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)


@register("fourier_transformer", impl="release")
class FourierTransformerRelease(FourierTransformerAttention):
    """What the authors' LRA code computed (`run_tasks.py --model dct-0.2 --layers 0`): layer 0 shortens its
    normalised input (`CodeShorten`, keep 0.2) and attends over the short sequence; every layer is softmax attention
    with biased q, k, v and output projections, in float32 (autocast off; the shortening layer's projections too);
    keys are masked only while the mask has the input's length, i.e. never after the shortening.

    Called alone it masks padded keys (`uses_mask`); in the model the pads reach every output through the
    shortening, which transforms them like tokens and drops the mask.
    """

    default_layers = (0,)
    default_keep = 0.2

    def __init__(self, d_model: int, n_heads: int, max_len: int, dropout: float, **options) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **options)
        # Their W_q, W_k, W_v and output Linear all have biases (PyTorch defaults).
        self.qkv = nn.Linear(d_model, 3 * self.qkv_dim)
        self.out = nn.Linear(self.qkv_dim, d_model)
        self.shortens = False

    def filter(self, cls: bool) -> nn.Module:
        self.shortens = True  # this layer's projections run in float32 too, as the shortening layer's there
        return CodeShorten(self.keep, cls)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        # Their code masks every key (no PADDED shortcut): `state` is taken only as every Attention takes it.
        with no_autocast(x) if self.shortens else contextlib.nullcontext():
            q, k, v = self.heads(x)
        with no_autocast(x):
            wide = torch.promote_types(q.dtype, torch.float32)
            y = self.core(q.to(wide), k.to(wide), v.to(wide), key_padding_mask(mask))
        return self.finish(y)
