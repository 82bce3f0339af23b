"""The LRA block and embedding: what the LRA release's encoders build around the token mixer (token + position
embeddings with the CLS token; mixer and feed-forward branches, each with dropout, norm before or after).
FNet's own code builds its block differently: lra.models.fnet_block."""

from __future__ import annotations

import math

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.mixers import Mixer
from lra.models.norms import make_norm


def sinusoid_table(length: int, d_model: int) -> torch.Tensor:
    """The fixed sine/cosine position table of Vaswani et al. (odd d_model allowed)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return table


# How pool=cls gets its token: learned = a learned vector prepended, one position more (the LRA release); shift = token
# id `rows - 1` inserted in front and the last token dropped, length unchanged (the Nystromformer-family code's
# append_cls, which the Fourier Transformer's LRA code keeps: on Image, vocab 256, it is white pixel 255's id).
CLS_TOKENS = ("learned", "shift")


class Embedding(nn.Module):
    """Token + position embeddings, with the CLS token (`cls_token`) in front when pooling reads it.

    `pos_rows`: rows of the position table when longer than the input (their code rounds it up to 2^k); only the
    first rows are read, so it changes the parameter count, not the computation."""

    def __init__(
        self, vocab_size: int, d_model: int, max_len: int, pos: str, cls: bool, dropout: float,
        cls_token: str = "learned", pos_rows: int | None = None,
    ) -> None:
        super().__init__()
        if cls_token not in CLS_TOKENS:
            raise LRAError(f"model.cls_token={cls_token!r} is not a CLS token; use one of: {', '.join(CLS_TOKENS)}")
        self.tokens = nn.Embedding(vocab_size, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if cls and cls_token == "learned" else None
        self.cls_id = vocab_size - 1 if cls and cls_token == "shift" else None
        length = max_len + int(self.cls is not None)
        if pos_rows is not None and pos_rows < length:
            raise LRAError(f"model.pos_rows={pos_rows} is shorter than the input ({length} positions); "
                           "set it to at least that, or null")
        length = pos_rows or length
        if pos == "learned":
            self.pos = nn.Parameter(torch.randn(1, length, d_model) * 0.02)
        elif pos == "sinusoidal":
            self.register_buffer("pos", sinusoid_table(length, d_model)[None], persistent=False)
        elif pos in ("none", "rotary"):  # the mixer knows order itself (S4D, LRU) or rotates q and k by position
            self.register_buffer("pos", torch.zeros(1, length, 1), persistent=False)
        else:
            raise LRAError(f"model.pos={pos!r} is not a position scheme; use sinusoidal, learned, rotary or none")
        self.drop = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cls_id is not None:  # [B, L] -> [CLS, ids[:-1]]: still [B, L], the CLS always real
            ids = torch.cat([ids.new_full((ids.shape[0], 1), self.cls_id), ids[:, :-1]], dim=1)
            mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask[:, :-1]], dim=1)
        x = self.tokens(ids)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
            mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
        return self.drop(self.combine(x, self.pos[:, : x.shape[1]])), mask

    def combine(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Token [B, L, D] and position [1, L, D or 1] embeddings -> the embedded input, before dropout."""
        return tokens + positions


# Where a block applies its mixer's resizer (lra.models.mixers.base): on its input, or on its normalised input.
PLACEMENTS = ("input", "normed")


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))


class Block(nn.Module):
    """Mixer + feed-forward, each in a residual branch; `norm` = "pre" (LRA Transformer) or "post" (FNet), of
    `norm_type` layer or batch (lra.models.norms).

    d_ff = 0: no feed-forward branch, the mixer's residual branch alone (the S4 block: SSM + GLU)."""

    def __init__(
        self, mixer: Mixer, d_model: int, d_ff: int, dropout: float, norm: str, zero_pad: bool,
        norm_type: str = "layer",
    ) -> None:
        super().__init__()
        if norm not in ("pre", "post"):
            raise LRAError(f"model.norm={norm!r} is not a norm placement; use pre or post")
        self.mixer = mixer
        self.ffn = FeedForward(d_model, d_ff, dropout) if d_ff > 0 else None
        self.norm1 = make_norm(norm_type, d_model)
        self.norm2 = make_norm(norm_type, d_model) if d_ff > 0 else None
        self.drop = nn.Dropout(dropout)
        self.pre = norm == "pre"
        # A mask-free mixer (FNet) sees pads as tokens unless they are zeroed first.
        self.zero_pad = zero_pad and not mixer.uses_mask

    def mix(self, x: torch.Tensor, mask: torch.Tensor, state: dict | None = None, first: bool = False) -> torch.Tensor:
        """The mixer's output [B, L, D], or with `first` its position 0 only [B, 1, D] (Mixer.first_row)."""
        if self.zero_pad:
            x = x * mask[..., None].to(x.dtype)
        stateful = state is not None and self.mixer.uses_state
        # A mixer's own first_row (cheaper than its whole output); else the whole output, checked, then its first row.
        alone = first and type(self.mixer).first_row is not Mixer.first_row
        call = self.mixer.first_row if alone else self.mixer
        y = call(x, mask, state=state) if stateful else call(x, mask)
        expected = (x.shape[0], 1, x.shape[2]) if alone else tuple(x.shape)
        if tuple(y.shape) != expected:
            raise LRAError(
                f"model.mixer {type(self.mixer).__qualname__}{'.first_row' if alone else ''} returned shape "
                f"{tuple(y.shape)} for input {tuple(x.shape)}; a mixer maps [B, L, D] to [B, L, D] (first_row: to "
                "[B, 1, D])"
            )
        return y[:, :1] if first and not alone else y

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, state: dict | None = None, resizer: nn.Module | None = None,
        first: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`state`: the encoder's dict shared across layers, handed to a mixer that declares `uses_state`.
        `resizer`: the mixer's (Mixer.resizer), applied where its `placement` says; the new mask comes back.
        `first`: only position 0 comes out ([B, 1, D]; the mixer still reads every position), for a last block
        whose other positions nothing reads (lra.models.encoder.Encoder.reads_first_only)."""
        placement = getattr(resizer, "placement", "input")
        if resizer is not None and placement == "input":
            x, mask = resizer(x, mask)
        keep = slice(None, 1) if first else slice(None)
        if self.pre:
            h = self.norm1(x, mask)
            if resizer is not None and placement == "normed":  # the shortened normalised input is the residual
                x, mask = resizer(h, mask)
                h = x
            x, y = x[:, keep], self.mix(h, mask, state, first)
            mask = mask[:, keep]
            x = x + self.drop(y)
            return (x if self.ffn is None else x + self.drop(self.ffn(self.norm2(x, mask)))), mask
        y = self.mix(x, mask, state, first)
        x, mask = x[:, keep], mask[:, keep]
        x = self.norm1(x + self.drop(y), mask)
        return (x if self.ffn is None else self.norm2(x + self.drop(self.ffn(x)), mask)), mask
