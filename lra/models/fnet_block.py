"""FNet as its own code builds it (google-research `f_net/layers.py` and `models.py`; docs/models.md#fnets-own-code),
`model.block=fnet`, beside the LRA block (lra.models.lra_block) that the LRA release builds around any mixer.

What differs from the LRA block, point by point:
- embeddings: word + learned position + type (one type here, row 0 of the code's 4) -> LayerNorm -> a d x d Dense
  projection -> dropout (the LRA block: word + position -> dropout);
- blocks: post-LN, `LN(x + mix(x))` then `LN(h + dropout(Dense(GELU(Dense(h)))))`: dropout only after the feed-forward
  output, none after the mixer and none inside the feed-forward branch (the LRA block drops out in all three);
  GELU in its tanh form (flax's `nn.gelu` default); LayerNorm eps 1e-12;
- pooling: position 0 through Dense + tanh (the code's pooler);
- init (`model.init=fnet`, lra.models.init): every Dense kernel and embedding N(0, 0.02), biases N(0, 0.02), except
  where the code leaves flax's Dense defaults, which each module below names: `flax_dense` (lecun-normal kernel,
  zero bias) and `flax_zero_bias` (N(0, 0.02) kernel, zero bias).
Per step this draws 1 + n_layers dropout masks (plus the attention dropout of a hybrid's attention layers), where the
LRA block draws 1 + 3 n_layers.
"""

from __future__ import annotations

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.lra_block import Block, Embedding
from lra.models.mixers import Mixer
from lra.models.norms import make_norm

LAYER_NORM_EPS = 1e-12  # the f_net code's LAYER_NORM_EPSILON
TYPE_ROWS = 4  # the code's (and HF FNetConfig's) type_vocab_size; single sequences read row 0


class FNetEmbedding(Embedding):
    """word + position + type -> LayerNorm -> Dense(d, d) -> dropout; the CLS token as in the LRA embedding."""

    flax_dense = ("project",)  # the code's `hidden_mapping_in`: a flax Dense with its defaults

    def __init__(self, vocab_size: int, d_model: int, max_len: int, pos: str, cls: bool, dropout: float,
                 **options) -> None:
        super().__init__(vocab_size, d_model, max_len, pos, cls, dropout, **options)
        self.types = nn.Embedding(TYPE_ROWS, d_model)
        self.norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.project = nn.Linear(d_model, d_model)

    def combine(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.project(self.norm(tokens + positions + self.types.weight[0]))  # [B, L, D]


class FNetFeedForward(nn.Sequential):
    """Dense(d_ff) -> GELU (tanh form) -> Dense(d) -> dropout: the code's FeedForwardLayer."""

    flax_zero_bias = ("2",)  # the output Dense gets the N(0, 0.02) kernel but no bias_init

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(d_model, d_ff), nn.GELU(approximate="tanh"), nn.Linear(d_ff, d_model), nn.Dropout(dropout)
        )


class FNetBlock(Block):
    """`h = LN(x + mix(x))`, `out = LN(h + FFN(h))`, with the feed-forward branch's dropout at its end only."""

    def __init__(self, mixer: Mixer, d_model: int, d_ff: int, dropout: float, zero_pad: bool,
                 norm_type: str = "layer") -> None:
        if d_ff < 1:
            raise LRAError(f"model.block=fnet needs a feed-forward branch; model.d_ff={d_ff} must be at least 1")
        super().__init__(mixer, d_model, d_ff, dropout, "post", zero_pad, norm_type)
        self.ffn = FNetFeedForward(d_model, d_ff, dropout)
        self.norm1 = make_norm(norm_type, d_model, eps=LAYER_NORM_EPS)
        self.norm2 = make_norm(norm_type, d_model, eps=LAYER_NORM_EPS)
        del self.drop

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, state: dict | None = None, resizer: nn.Module | None = None,
        first: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if resizer is not None:
            raise LRAError(f"model.block=fnet has no place for {type(self.mixer).__qualname__}'s resizer; "
                           "use model.block=lra with this mixer")
        y = self.mix(x, mask, state, first)  # [B, L or 1, D]
        if first:
            x, mask = x[:, :1], mask[:, :1]
        x = self.norm1(x + y, mask)
        return self.norm2(x + self.ffn(x), mask), mask


class TanhPooler(nn.Module):
    """Position 0 -> Dense(d, d) -> tanh: the code's pooler."""

    flax_zero_bias = ("dense",)

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x[:, 0]))  # [B, L, D] -> [B, D]
