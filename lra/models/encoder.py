"""The shared encoder: embed -> N x [mixer + feed-forward] -> pool. Only the token mixer varies between models.

The encoder reads what each mixer declares (`lra.models.mixers.base.Mixer`: uses_mask, uses_state, resizer).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.mixers import Mixer, build_mixer
from lra.models.mixers.base import PADDED
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
        return self.drop(x + self.pos[:, : x.shape[1]]), mask


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

    def mix(self, x: torch.Tensor, mask: torch.Tensor, state: dict | None = None) -> torch.Tensor:
        if self.zero_pad:
            x = x * mask[..., None].to(x.dtype)
        y = self.mixer(x, mask, state=state) if state is not None and self.mixer.uses_state else self.mixer(x, mask)
        if y.shape != x.shape:
            raise LRAError(
                f"model.mixer {type(self.mixer).__qualname__} returned shape {tuple(y.shape)} for input "
                f"{tuple(x.shape)}; a mixer maps [B, L, D] to [B, L, D]"
            )
        return self.drop(y)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, state: dict | None = None, resizer: nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`state`: the encoder's dict shared across layers, handed to a mixer that declares `uses_state`.
        `resizer`: the mixer's (Mixer.resizer), applied where its `placement` says; the new mask comes back."""
        placement = getattr(resizer, "placement", "input")
        if resizer is not None and placement == "input":
            x, mask = resizer(x, mask)
        if self.pre:
            h = self.norm1(x, mask)
            if resizer is not None and placement == "normed":  # the shortened normalised input is the residual
                x, mask = resizer(h, mask)
                h = x
            x = x + self.mix(h, mask, state)
            return (x if self.ffn is None else x + self.drop(self.ffn(self.norm2(x, mask)))), mask
        x = self.norm1(x + self.mix(x, mask, state), mask)
        return (x if self.ffn is None else self.norm2(x + self.drop(self.ffn(x)), mask)), mask


# cls: a learned CLS token prepended and read; first: position 0 read, no CLS (the release's dual encoder, built
# with classifier=False); mean: the mean over real positions; mean_all: over every position, padding included (the
# release's classifier_head, `jnp.mean(encoded, axis=1)`); mean_zeros: padded positions zeroed after the final norm,
# then the mean over every position, i.e. the sum over real ones / max_len (the PyTorch ports' `norm(x) * mask`, then
# `mean(dim=1)`: docs/reference.md#small-protocols).
POOLS = ("cls", "first", "mean", "mean_all", "mean_zeros")


class Encoder(nn.Module):
    """Maps token ids [B, L] to one pooled vector [B, D] (`features`, then `pooling`).

    `layers` names each block's mixer (a hybrid mixes names); `mixer_options` maps a mixer name to its options.
    `resizers` holds, by layer index, the modules that change the sequence before a layer (a mixer's `resizer`).
    """

    def __init__(
        self,
        layers: list[str],
        vocab_size: int,
        max_len: int,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float,
        attn_dropout: float,
        norm: str = "pre",
        norm_type: str = "layer",
        pool: str = "cls",
        pos: str = "sinusoidal",
        zero_pad: bool = False,
        mixer_options: dict[str, dict] | None = None,
        impl: str = "paper",
        qkv_dim: int | None = None,
        zero_is_pad: bool = False,
        cls_token: str = "learned",
        pos_rows: int | None = None,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise LRAError(f"model.pool={pool!r} is not a pooling; use one of: {', '.join(POOLS)}")
        self.pool = pool
        self.zero_is_pad = zero_is_pad
        self.embed = Embedding(
            vocab_size, d_model, max_len, pos, cls=pool == "cls", dropout=dropout, cls_token=cls_token,
            pos_rows=pos_rows,
        )
        seq_len = max_len + int(self.embed.cls is not None)
        options = mixer_options or {}
        self.blocks = nn.ModuleList()
        self.resizers = nn.ModuleDict()
        for index, name in enumerate(layers):
            mixer = build_mixer(
                name, d_model, n_heads, seq_len, attn_dropout, impl=impl, qkv_dim=qkv_dim, rotary=pos == "rotary",
                **options.get(name, {}),
            )
            if mixer.uses_state and any(type(b.mixer) is type(mixer) for b in self.blocks):
                mixer.follows_state()  # an earlier layer starts the state this one reads (Luna's P)
            self.blocks.append(Block(mixer, d_model, d_ff, dropout, norm, zero_pad, norm_type))
            resizer = mixer.resizer(index, len(layers), pool == "cls")
            if resizer is not None:
                placement = getattr(resizer, "placement", "input")
                if placement not in PLACEMENTS or (placement == "normed" and norm != "pre"):
                    raise LRAError(
                        f"{type(mixer).__qualname__}'s resizer placement {placement!r} needs one of "
                        f"{', '.join(PLACEMENTS)} ('normed' with model.norm=pre only); fix the mixer or model.norm"
                    )
                self.resizers[str(index)] = resizer
        # Pre-norm blocks leave their sum unnormalised: one more norm after the last (post-norm blocks end in one).
        self.final_norm = make_norm(norm_type, d_model) if norm == "pre" else None

    def features(
        self, ids: torch.Tensor, mask: torch.Tensor, resize: bool = True, padded: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-position outputs [B, L', D] and their mask [B, L'], CLS first under pool=cls.

        L' is shorter than the input after a resizer (the Fourier Transformer's spectral shortening); `resize=False`
        skips the resizers, so that every token keeps its own position (the Fourier Transformer's have no weights:
        its every weight still trains). `padded=False`: the caller knows on the host that `mask` is all True."""
        if self.zero_is_pad:  # the release's `padding_mask = inputs > 0`: black pixels are padding too
            mask = mask & (ids > 0)
        x, mask = self.embed(ids, mask)
        if self.zero_is_pad and self.embed.cls is not None:  # the release gives CLS the first input token's mask
            mask = torch.cat([mask[:, 1:2], mask[:, 1:]], dim=1)
        state: dict = {PADDED: padded or self.zero_is_pad}
        for index, block in enumerate(self.blocks):
            resizer = self.resizers[str(index)] if resize and str(index) in self.resizers else None
            if resizer is not None:
                state[PADDED] = True  # after a resizer the mixers read its mask again
            x, mask = block(x, mask, state, resizer)
        return (x if self.final_norm is None else self.final_norm(x, mask)), mask

    def token_features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One output per input token [B, L, D], for per-token objectives (self-pretraining, lra.run.pretrain):
        no resizing, and the CLS position dropped."""
        if self.embed.cls_id is not None:
            raise LRAError("model.cls_token=shift drops each input's last token, so per-token objectives "
                           "(pretrain=mlm) cannot use it; use model.cls_token=learned")
        x, _ = self.features(ids, mask, resize=False)
        return x[:, int(self.embed.cls is not None):]

    def pooling(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, L', D] features -> [B, D] by `pool`."""
        if self.pool in ("cls", "first"):
            return x[:, 0]
        if self.pool == "mean_all":
            return x.mean(1)
        if self.pool == "mean_zeros":
            return (x * mask[..., None].to(x.dtype)).mean(1)
        weights = mask[..., None].to(x.dtype)
        return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:
        return self.pooling(*self.features(ids, mask, padded=padded))
