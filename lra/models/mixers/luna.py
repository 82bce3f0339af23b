"""Luna (Ma et al. 2021): linear unified nested attention through a short packed sequence carried across layers."""

from __future__ import annotations

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.mixers.attention import Attention
from lra.models.mixers.base import Mixer
from lra.models.mixers.registry import register

# The key of the encoder's per-forward state under which Luna layers pass the packed sequence on.
CARRY = "luna"


@register("luna")
class Luna(Mixer):
    """Pack: P' = Attn(P, X) over real tokens only; unpack: Y = Attn(X, P'); cost O(L * proj_len), not O(L^2).

    P (`proj_len` x D) starts as a learned parameter. Through the encoder's shared `state` the next Luna layer
    takes P + P' as its P: a residual stream that each layer layer-normalises on entry (the paper's
    P_A = LayerNorm(P' + P), with the norm moved to the consuming layer so that a lone layer uses all its
    parameters). Called without `state` (the plain mixer contract) a layer starts from its own parameter; only the
    first Luna layer of an encoder has one (`follows_state`).
    Padded tokens are never packed, so they cannot reach real positions.
    """

    uses_state = True

    def __init__(self, d_model: int, n_heads: int, max_len: int, dropout: float, proj_len: int = 16, **base) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if proj_len < 1:
            raise LRAError(f"model.proj_len={proj_len} must be a positive integer")
        self.p = nn.Parameter(torch.randn(proj_len, d_model) * d_model**-0.5)
        self.p_norm = nn.LayerNorm(d_model)
        inner = {**base, "impl": "paper"}  # Luna is not in the LRA release: both impl values compute the same
        self.pack = Attention(d_model, n_heads, proj_len, dropout, **inner)
        self.unpack = Attention(d_model, n_heads, max_len, dropout, **inner)

    def follows_state(self) -> None:
        """A later layer always takes P from the state: its own would get no gradient (DDP stops on that)."""
        self.p = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        p = state.get(CARRY) if state is not None else None
        if p is None:
            if self.p is None:
                raise LRAError("a Luna layer after the first reads P from the encoder's state: call it with state")
            p = self.p.to(x.dtype).expand(x.shape[0], -1, -1)
        packed = self.pack.attend(self.p_norm(p).to(x.dtype), x, mask)
        if state is not None:
            state[CARRY] = p + packed
        return self.unpack.attend(x, packed, None)
