"""Sparse Sinkhorn attention (Tay et al. 2020): block-local attention plus one learned, softly sorted block; and
`SinkhornRelease`, what the LRA release computed (strided groups plus one block that sums them all)."""

from __future__ import annotations

import math

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.mixers.blocks import BlockMixerBase, joint_softmax, pad_dim, padded_length, real_tokens, to_blocks
from lra.models.mixers.local import from_strided_groups, release_attend, release_chunk_mask, strided_groups
from lra.models.mixers.registry import register


def sinkhorn(log_alpha: torch.Tensor, allowed: torch.Tensor, n_iters: int) -> torch.Tensor:
    """Sinkhorn normalisation in log space: alternately normalise rows and columns of exp(log_alpha) over the
    `allowed` entries; returns the (approximately doubly stochastic) matrix, exactly 0 where not allowed.

    Every row and column must hold at least one allowed entry (the caller pairs padding with padding), so no
    logsumexp is over an empty set and neither values nor gradients can be NaN.
    """
    log_alpha = log_alpha.masked_fill(~allowed, float("-inf"))
    for _ in range(n_iters):
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=-1, keepdim=True)
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=-2, keepdim=True)
    return log_alpha.exp()


@register("sinkhorn")
class SinkhornAttention(BlockMixerBase):
    """Sinkhorn mixture attention: each block of `block_size` tokens attends to its own block and to one sorted block.

    SortNet: each block's summary (per head, the sum of its real keys) goes through a 2-layer MLP to logits R[i, :]
    over the blocks (max_len / block_size outputs, the first n_blocks used). Sinkhorn normalisation of R / temperature
    (`sinkhorn_iters` row/column rounds) gives a soft permutation P; block i's sorted keys and values are
    sum_j P[i, j] K_j, V_j. Query block i then attends jointly (one softmax) to its own keys and its sorted keys.

    Padding: padded keys/values are zeroed before sorting, fully padded blocks are kept out of the real blocks'
    Sinkhorn problem (pad blocks are only paired with pad blocks), and a sorted slot counts as a key only if some
    real key was sorted into it. So neither pad content nor the amount of appended padding reaches real outputs.
    With one block, P = [1] and the result is exact attention (the block appears twice, which a softmax ignores).
    Memory O(L * 2 block_size + n_blocks^2).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        block_size: int = 50,
        sinkhorn_iters: int = 5,
        temperature: float = 0.75,
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if block_size < 1:
            raise LRAError(f"model.block_size={block_size} must be a positive integer")
        if sinkhorn_iters < 1:
            raise LRAError(f"model.sinkhorn_iters={sinkhorn_iters} must be a positive integer")
        if temperature <= 0:
            raise LRAError(f"model.temperature={temperature} must be > 0")
        self.block_size = block_size
        self.sinkhorn_iters = sinkhorn_iters
        self.temperature = temperature
        max_blocks = math.ceil(max_len / block_size)
        self.sort_net = nn.Sequential(
            nn.Linear(self.head_dim, self.head_dim), nn.ReLU(), nn.Linear(self.head_dim, max_blocks)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        size = min(self.block_size, length)
        padded = padded_length(length, size)
        n_blocks = padded // size
        if n_blocks > self.sort_net[-1].out_features:
            raise LRAError(f"sinkhorn got a sequence of {length} tokens, longer than its max_len; raise task.max_len")
        real = pad_dim(real_tokens(mask), padded, dim=1, value=False)
        q, k, v = (pad_dim(t, padded, dim=2) for t in self.heads(x))
        keep = real[:, None, :, None].to(k.dtype)
        qb, kb, vb = (to_blocks(t, size, dim=2) for t in (q, k * keep, v * keep))  # [B, H, nb, bs, Dh]
        real_b = to_blocks(real, size, dim=1)  # [B, nb, bs]

        block_real = real_b.any(dim=-1)  # [B, nb]
        logits = self.sort_net(kb.sum(dim=3))[..., :n_blocks].float() / self.temperature  # [B, H, nb, nb]
        both_real = block_real[:, None, :, None] & block_real[:, None, None, :]
        both_pad = ~block_real[:, None, :, None] & ~block_real[:, None, None, :]
        perm = sinkhorn(logits, both_real | both_pad, self.sinkhorn_iters)
        sorted_k = torch.einsum("bhij,bhjtd->bhitd", perm.to(kb.dtype), kb)
        sorted_v = torch.einsum("bhij,bhjtd->bhitd", perm.to(vb.dtype), vb)
        sorted_real = torch.einsum("bhij,bjt->bhit", perm, real_b.float()) > 0  # [B, H, nb, bs]

        probs, _ = joint_softmax(
            [qb @ kb.transpose(-1, -2), qb @ sorted_k.transpose(-1, -2)],
            [real_b[:, None, :, None, :], sorted_real[:, :, :, None, :]],
            self.dropout,
            self.training,
        )
        y = probs[0].to(v.dtype) @ vb + probs[1].to(v.dtype) @ sorted_v
        return self.finish(y.flatten(2, 3), length)


# The release's SinkhornAttention default, which its transformer block never overrides.
RELEASE_SORT_OUTPUTS = 25


@register("sinkhorn", impl="release")
class SinkhornRelease(SinkhornAttention):
    """Sinkhorn attention as the LRA release computed it (models/sinkhorn_transformer/sinkhorn_attention.py):

    - groups are strided as in `LocalRelease` (p and q share a group iff p % n == q % n, n = L / block_size),
      with the same contiguous-chunk padding mask (`release_chunk_mask`);
    - the sort net is one bias-free Linear(head_dim, 25) on each group's key sum, then a plain softmax (the
      default sort_activation): no Sinkhorn rounds, so `sinkhorn_iters` and `temperature` are ignored;
    - its einsum `bskhd,bnhl->bsnhd` sums the group index k and the permutation index l separately
      (`sorted_blocks`), so every group's "sorted block" is the same: slot s holds the sum of the keys (values)
      at positions s * n .. s * n + n - 1, times the permutation row's sum (1 up to rounding). The sort net
      changes nothing but that rounding, and gets next to no gradient;
    - a sorted slot (s, t) is allowed iff some chunk has both its s-th and t-th position real;
    - own group and sorted block are two separate softmaxes (each with its own dropout), and their outputs add.

    The release needs L to be a multiple of block_size (its reshape fails otherwise); here other lengths are
    padded with zero tokens marked as padding. Real outputs depend on padded content: `uses_mask = False`.
    """

    uses_mask = False
    flax_dense = ("sort_net",)  # the release's `logits` Dense, flax defaults

    def __init__(self, d_model: int, n_heads: int, max_len: int, dropout: float, **options) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **options)
        self.sort_net = nn.Linear(self.head_dim, RELEASE_SORT_OUTPUTS, bias=False)

    def permutation(self, kb: torch.Tensor) -> torch.Tensor:
        """The release's "sorting" [B, H, n, min(n, 25)]: softmax of the sort net on each group's key sum.
        kb: strided groups [B, H, n, bs, Dh]."""
        logits = self.sort_net(kb.sum(dim=3))[..., : kb.shape[2]]
        return torch.softmax(logits.float(), dim=-1)

    @staticmethod
    def sorted_blocks(blocks: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
        """The release's einsum `bskhd,bnhl->bsnhd` in this layout: group index k and permutation index l are
        summed separately, so out[n, s] = sum_k blocks[k, s] * sum_l perm[n, l] for every group n.
        blocks [B, H, n, bs, Dh], perm [B, H, n, m] -> [B, H, n, bs, Dh]."""
        return torch.einsum("bhksd,bhnl->bhnsd", blocks, perm.to(blocks.dtype))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        size = self.block_size
        padded = padded_length(length, size)
        n_groups = padded // size
        q, k, v = (strided_groups(pad_dim(t, padded, dim=2), n_groups, dim=2) for t in self.heads(x))  # [B,H,n,bs,Dh]
        perm = self.permutation(k)
        sorted_k, sorted_v = self.sorted_blocks(k, perm), self.sorted_blocks(v, perm)
        allowed = release_chunk_mask(pad_dim(mask, padded, dim=1, value=False), size)  # [B, n, bs, bs]
        # The release's sorted mask, einsum bksj,bnhl->bnsj: a count over chunks times ~n_heads, tested > 0.
        sorted_allowed = allowed.any(dim=1, keepdim=True)  # [B, 1, bs, bs]
        y = release_attend(q, k, v, allowed[:, None], self.dropout, self.training)
        y = y + release_attend(q, sorted_k, sorted_v, sorted_allowed[:, None], self.dropout, self.training)
        return self.finish(from_strided_groups(y, dim=2), length)
