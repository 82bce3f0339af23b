"""The shared encoder: embed -> N x [mixer + feed-forward] -> pool. Only the token mixer varies between models.

The encoder reads what each mixer declares (`lra.models.mixers.base.Mixer`: uses_mask, uses_state, resizer). Its
embedding and blocks are the LRA block's (lra.models.lra_block) or FNet's own code's (lra.models.fnet_block),
chosen by `block`.
"""

from __future__ import annotations

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.fnet_block import FNetBlock, FNetEmbedding, TanhPooler
from lra.models.lra_block import PLACEMENTS, Block, Embedding
from lra.models.mixers import build_mixer
from lra.models.mixers.base import PADDED
from lra.models.mixers.registry import accepted, resolve
from lra.models.norms import make_norm

# model.block: lra = the LRA release's block around any mixer; fnet = FNet's own code (lra.models.fnet_block).
BLOCKS = ("lra", "fnet")


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
        block: str = "lra",
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise LRAError(f"model.pool={pool!r} is not a pooling; use one of: {', '.join(POOLS)}")
        check_block(block, norm, pool)
        self.pool = pool
        self.zero_is_pad = zero_is_pad
        fnet = block == "fnet"
        self.embed = (FNetEmbedding if fnet else Embedding)(
            vocab_size, d_model, max_len, pos, cls=pool == "cls", dropout=dropout, cls_token=cls_token,
            pos_rows=pos_rows,
        )
        seq_len = max_len + int(self.embed.cls is not None)
        options = mixer_options or {}
        self.blocks = nn.ModuleList()
        self.resizers = nn.ModuleDict()
        for index, name in enumerate(layers):
            own = dict(options.get(name, {}))
            if fnet and "qkv_bias" in accepted(resolve(name, impl))[0]:
                own["qkv_bias"] = True  # the f_net code's attention: biased q, k, v (flax SelfAttention, use_bias)
            mixer = build_mixer(
                name, d_model, n_heads, seq_len, attn_dropout, impl=impl, qkv_dim=qkv_dim, rotary=pos == "rotary",
                **own,
            )
            if mixer.uses_state and any(type(b.mixer) is type(mixer) for b in self.blocks):
                mixer.follows_state()  # an earlier layer starts the state this one reads (Luna's P)
            self.blocks.append(
                FNetBlock(mixer, d_model, d_ff, dropout, zero_pad, norm_type) if fnet
                else Block(mixer, d_model, d_ff, dropout, norm, zero_pad, norm_type)
            )
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
        self.pooler = TanhPooler(d_model) if fnet else None  # FNet's own code pools position 0 through Dense + tanh
        # The pooled forward reads position 0 alone after the last block: that block's mixer still reads every
        # position, its position-wise rest (norms, feed-forward, dropout) runs on position 0 only. Exact, unless a
        # norm's statistics span positions (batch norm) or the last layer resizes the sequence.
        self.reads_first_only = (
            pool in ("cls", "first") and norm_type == "layer" and str(len(layers) - 1) not in self.resizers
        )

    def features(
        self, ids: torch.Tensor, mask: torch.Tensor, resize: bool = True, padded: bool = True, first: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-position outputs [B, L', D] and their mask [B, L'], CLS first under pool=cls.

        L' is shorter than the input after a resizer (the Fourier Transformer's spectral shortening); `resize=False`
        skips the resizers, so that every token keeps its own position (the Fourier Transformer's have no weights:
        its every weight still trains). `padded=False`: the caller knows on the host that `mask` is all True.
        `first`: the last block gives position 0 alone ([B, 1, D]; `reads_first_only` says when that is exact)."""
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
            x, mask = block(x, mask, state, resizer, first=first and index == len(self.blocks) - 1)
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
        if self.pooler is not None:
            return self.pooler(x)
        if self.pool in ("cls", "first"):
            return x[:, 0]
        if self.pool == "mean_all":
            return x.mean(1)
        if self.pool == "mean_zeros":
            return (x * mask[..., None].to(x.dtype)).mean(1)
        weights = mask[..., None].to(x.dtype)
        return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, padded: bool = True) -> torch.Tensor:
        return self.pooling(*self.features(ids, mask, padded=padded, first=self.reads_first_only))


def check_block(block: str, norm: str, pool: str) -> None:
    """FNet's own code is post-norm and pools position 0: one line for a setting it cannot follow."""
    if block not in BLOCKS:
        raise LRAError(f"model.block={block!r} is not a block; use one of: {', '.join(BLOCKS)}")
    if block == "fnet" and norm != "post":
        raise LRAError("model.block=fnet is post-norm (LN after each residual sum), as FNet's own code; "
                       f"set model.norm=post (it is {norm})")
    if block == "fnet" and pool not in ("cls", "first"):
        raise LRAError(f"model.block=fnet pools position 0 through its tanh pooler; model.pool={pool} cannot be "
                       "followed: use model.pool=cls or first")
