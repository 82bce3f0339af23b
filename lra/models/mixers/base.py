"""The token-mixer contract, declared once: `Mixer` (what every mixer is) and `HeadedMixer` (the multi-head
query/key/value projection every attention-like mixer shares).

A mixer is built as `cls(d_model, n_heads, max_len, dropout, **options)` and called as `mixer(x[B, L, D],
mask[B, L]) -> [B, L, D]` (mask True = real token). `max_len` is the longest sequence the encoder feeds it (CLS
included); `dropout` is the attention dropout. What a mixer needs beyond that, it declares as class attributes
that the encoder reads, with the defaults below; a mixer overrides only what differs:

- `uses_mask = True`: real outputs never depend on padded content. False: the method mixes pads like tokens by
  design (FNet); the encoder then zeroes pads first if `model.zero_pad` is set. Say so in the docstring.
- `uses_heads = True`: the mixer splits `d_model` into `n_heads` heads, so `d_model % n_heads` must be 0.
- `uses_state = False`: True makes the encoder call `mixer(x, mask, state=state)` with one dict per encoder
  forward, shared by all layers, to read and write in place (Luna's packed sequence). Called without `state` the
  mixer must still work (start afresh).
- `resizer(layer, n_layers, cls) -> nn.Module | None`: a module `(x, mask) -> (x, mask)` that the encoder applies
  before layer `layer`, changing the sequence later layers and the pooling see (the Fourier Transformer's spectral
  filter); `cls` says whether position 0 is the CLS token. Default: None (no resizing).

A mixer from outside this repository subclasses `Mixer` and is selected by its dotted class path
(`model.mixer=my_pkg.my_mixer.MyMixer`); one in this package registers a short name with `@register`.
"""

from __future__ import annotations

import torch
from torch import nn

from lra.errors import LRAError


def check_heads(d_model: int, n_heads: int, needed_by: str) -> None:
    """The one head-divisibility check, with the one message."""
    if n_heads < 1 or d_model % n_heads:
        raise LRAError(
            f"model.d_model={d_model} is not divisible by model.n_heads={n_heads}, which {needed_by} needs; "
            "change one of them"
        )


def attend_all_if_empty(mask: torch.Tensor) -> torch.Tensor:
    """A sequence with no real token is treated as all real, so no attention row is empty (never NaN)."""
    return mask | ~mask.any(dim=-1, keepdim=True)


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[B, L, H*Dh] -> [B, H, L, Dh]."""
    b, n, d = x.shape
    return x.view(b, n, n_heads, d // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, L, Dh] -> [B, L, H*Dh]."""
    b, h, n, dh = x.shape
    return x.transpose(1, 2).reshape(b, n, h * dh)


class Mixer(nn.Module):
    """Base of every token mixer: the contract's optional parts with their defaults (see the module docstring)."""

    uses_mask: bool = True
    uses_heads: bool = True
    uses_state: bool = False

    def __init__(self, d_model: int, n_heads: int, max_len: int, dropout: float) -> None:
        super().__init__()
        if self.uses_heads:
            check_heads(d_model, n_heads, type(self).__name__)
        self.d_model = d_model
        self.n_heads = n_heads
        self.max_len = max_len
        self.dropout = dropout

    def resizer(self, layer: int, n_layers: int, cls: bool) -> nn.Module | None:
        return None


class HeadedMixer(Mixer):
    """Multi-head mixers: one fused bias-free input projection `qkv` (as the released LRA Transformer) and an
    output projection `out`. Every attention-like mixer lays out its weights this way, so they copy over one to one.

    `roles` names what the fused projection makes: "qkv"; "qv" when keys are derived from the queries (Reformer's
    shared QK); "v" when the attention weights are synthesized without queries or keys (Synthesizer).
    """

    ROLES = ("qkv", "qv", "v")

    def __init__(self, d_model: int, n_heads: int, max_len: int, dropout: float, roles: str = "qkv") -> None:
        super().__init__(d_model, n_heads, max_len, dropout)
        if roles not in self.ROLES:
            raise ValueError(f"roles must be one of {self.ROLES}, got {roles!r}")
        self.head_dim = d_model // n_heads
        self.roles = roles
        self.qkv = nn.Linear(d_model, len(roles) * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """[B, L, D] -> one [B, H, L, Dh] tensor per role (q, k, v for "qkv"), from one matmul."""
        return tuple(split_heads(t, self.n_heads) for t in self.qkv(x).chunk(len(self.roles), dim=-1))

    def cross_heads(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries from `x` [B, L, D], keys and values from `context` [B, M, D], with the same "qkv" weights."""
        d = self.d_model
        q = nn.functional.linear(x, self.qkv.weight[:d])
        k, v = nn.functional.linear(context, self.qkv.weight[d:]).chunk(2, dim=-1)
        return split_heads(q, self.n_heads), split_heads(k, self.n_heads), split_heads(v, self.n_heads)

    def finish(self, y: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """[B, H, L', Dh] -> [B, length, D] through the output projection (internal padding cut off)."""
        if length is not None:
            y = y[:, :, :length]
        return self.out(merge_heads(y))
