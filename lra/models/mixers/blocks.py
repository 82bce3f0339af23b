"""Block and chunk utilities shared by the block-sparse mixers (local, sparse, longformer, bigbird, reformer, sinkhorn).

Every one of those mixers computes attention as a few *groups* of keys per query block (its own block, neighbouring
blocks, global tokens, random or sorted blocks, ...). `joint_softmax` normalises the scores of all groups of a query
together, so a query sees one softmax over the union of its groups, exactly as a dense masked softmax would.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lra.models.mixers.base import HeadedMixer, attend_all_if_empty

# Score of a masked key: the most negative float32, so that a masked key never outweighs a real one.
NEG = torch.finfo(torch.float32).min


def real_tokens(mask: torch.Tensor) -> torch.Tensor:
    """[B, L] True = real key; a sequence with no real token counts all as real (`attend_all_if_empty`)."""
    return attend_all_if_empty(mask)


def padded_length(length: int, size: int) -> int:
    """The smallest multiple of `size` that holds `length`."""
    return math.ceil(length / size) * size


def pad_dim(x: torch.Tensor, length: int, dim: int, value: float | bool = 0) -> torch.Tensor:
    """Append `value`s along `dim` up to `length` (no copy when already that long)."""
    extra = length - x.shape[dim]
    if extra == 0:
        return x
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x, x.new_full(shape, value)], dim=dim)


def to_blocks(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Split axis `dim` (a multiple of `size`) into (n_blocks, size)."""
    dim = dim % x.dim()
    return x.unflatten(dim, (x.shape[dim] // size, size))


def neighbours(x: torch.Tensor, before: int, after: int, dim: int, fill: float | bool = 0) -> torch.Tensor:
    """For blocks along `dim` (the within-block axis is dim + 1), concatenate blocks b-before .. b+after.

    [..., nb, bs, *rest] -> [..., nb, (before + 1 + after) * bs, *rest]; blocks outside 0..nb-1 are `fill`, so passing
    a boolean mask with fill=False marks them invalid.
    """
    dim = dim % x.dim()
    n = x.shape[dim]
    parts = []
    if before:
        shape = list(x.shape)
        shape[dim] = before
        parts.append(x.new_full(shape, fill))
    parts.append(x)
    if after:
        shape = list(x.shape)
        shape[dim] = after
        parts.append(x.new_full(shape, fill))
    padded = torch.cat(parts, dim=dim) if len(parts) > 1 else x
    shifted = [padded.narrow(dim, offset, n) for offset in range(before + 1 + after)]
    return torch.cat(shifted, dim=dim + 1)


def shared_scores(qb: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Scores of blocked queries [B, H, nb, bs, Dh] against keys shared by every block [B, H, K, Dh]:
    [B, H, nb, bs, K], without copying the keys once per block as a broadcast matmul would."""
    return (qb.flatten(2, 3) @ k.transpose(-1, -2)).unflatten(2, qb.shape[2:4])


def shared_values(probs: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The matching read-out: probabilities [B, H, nb, bs, K] times shared values [B, H, K, Dh]."""
    return (probs.flatten(2, 3) @ v).unflatten(2, probs.shape[2:4])


def joint_softmax(
    scores: list[torch.Tensor],
    valid: list[torch.Tensor],
    dropout: float = 0.0,
    training: bool = False,
    with_log_norm: bool = False,
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """One softmax over several key groups: `scores[g]` [..., Kg] with `valid[g]` broadcastable to it.

    Runs in float32. Invalid keys get exactly zero weight; a query with no valid key gets an all-zero row (never NaN).
    Returns the per-group probabilities (after dropout) and, if asked, the float32 log-normaliser [..., 1].
    """
    # A finite fill (not -inf) keeps every row's softmax defined; exp(fill - max) underflows to exactly 0.
    masked = [s.float().masked_fill(~v, NEG) for s, v in zip(scores, valid, strict=True)]
    logits = torch.cat(masked, dim=-1) if len(masked) > 1 else masked[0]
    probs = torch.softmax(logits, dim=-1)
    has_key = logits.amax(dim=-1, keepdim=True) > NEG
    probs = torch.where(has_key, probs, 0.0)
    log_norm = torch.logsumexp(logits, dim=-1, keepdim=True) if with_log_norm else None
    if dropout > 0.0 and training:
        probs = F.dropout(probs, dropout, training=True)
    return list(probs.split([s.shape[-1] for s in masked], dim=-1)), log_norm


class BlockMixerBase(HeadedMixer):
    """The block-sparse mixers' shared steps; the subclasses differ only in which keys each query sees."""

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[B, L, D] -> q (already scaled by 1/sqrt(head_dim)), k, v, each [B, H, L, Dh]."""
        q, k, v = super().heads(x)
        return q * self.head_dim**-0.5, k, v

    def attend_all(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Full attention of a few (global) queries [B, H, G, Dh] over every real key; [B, H, G, Dh] out."""
        (probs,), _ = joint_softmax([q @ k.transpose(-1, -2)], [real[:, None, None, :]], self.dropout, self.training)
        return probs.to(v.dtype) @ v
