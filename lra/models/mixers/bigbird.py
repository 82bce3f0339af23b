"""BigBird block-sparse attention (Zaheer et al. 2020): window + global + random blocks."""

from __future__ import annotations

import math

import torch

from lra.errors import LRAError
from lra.models.mixers.blocks import (
    BlockMixerBase,
    joint_softmax,
    neighbours,
    pad_dim,
    padded_length,
    real_tokens,
    shared_scores,
    shared_values,
    to_blocks,
)
from lra.models.mixers.registry import register


def draw_random_blocks(
    n_heads: int, n_blocks: int, n_random: int, n_global_blocks: int, generator: torch.Generator
) -> torch.Tensor:
    """[H, n_blocks, n_random] key-block indices per head and query block, distinct and outside the query block's
    window (b-1, b, b+1) and the global blocks; -1 where too few blocks are left to choose from."""
    block = torch.arange(n_blocks)
    excluded = ((block[:, None] - block[None, :]).abs() <= 1) | (block[None, :] < n_global_blocks)
    picks = []
    for _ in range(n_heads):  # one head at a time bounds memory to n_blocks^2
        scores = torch.rand(n_blocks, n_blocks, generator=generator).masked_fill(excluded, -1.0)
        top, index = scores.topk(min(n_random, n_blocks), dim=-1)
        picks.append(torch.where(top >= 0, index, -1).sort(dim=-1).values)
    return torch.stack(picks)


@register("bigbird")
class BigBirdAttention(BlockMixerBase):
    """Blocks of `block_size`; query block b attends to key blocks b-1, b, b+1 (window), the first
    `n_global_blocks` blocks (global, which hold CLS) and `n_random` random blocks per head; global blocks attend to
    everything.

    The random blocks are drawn once, at construction, for the longest sequence (`max_len`) from a torch.Generator
    seeded with `seed` (None: a seed drawn from torch's global RNG, so each layer gets its own pattern under a fixed
    run seed). They live in the persistent buffer `random_blocks` (saved in checkpoints) and are the same in training
    and evaluation. Blocks are indexed from the start, so appended padding never moves them; a random block that
    falls in the padding is masked like any padded key.
    Unlike the LRA release (first and last block global), only leading blocks are global: with appended padding the
    last block is padding, and a global last block would make outputs depend on the padded length.
    Memory O(L * (3 + n_global_blocks + n_random) * block_size).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        block_size: int = 64,
        n_random: int = 3,
        n_global_blocks: int = 1,
        seed: int | None = None,
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if block_size < 1:
            raise LRAError(f"model.block_size={block_size} must be a positive integer")
        if n_random < 0:
            raise LRAError(f"model.n_random={n_random} must be >= 0")
        if n_global_blocks < 0:
            raise LRAError(f"model.n_global_blocks={n_global_blocks} must be >= 0")
        self.block_size = block_size
        self.n_global_blocks = n_global_blocks
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        generator = torch.Generator().manual_seed(seed)
        n_blocks = math.ceil(max_len / block_size)
        self.register_buffer(
            "random_blocks", draw_random_blocks(n_heads, n_blocks, n_random, n_global_blocks, generator)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        size = min(self.block_size, length)  # a sequence shorter than a block is one (global) block
        padded = padded_length(length, size)
        n_blocks = padded // size
        if size == self.block_size and n_blocks > self.random_blocks.shape[1]:
            raise LRAError(f"bigbird got a sequence of {length} tokens, longer than its max_len; raise task.max_len")
        n_global = min(self.n_global_blocks, n_blocks)
        q, k, v = self.heads(x)
        real = real_tokens(mask)
        qb, kb, vb = (to_blocks(pad_dim(t, padded, dim=2), size, dim=2) for t in (q, k, v))  # [B, H, nb, bs, Dh]
        real_b = to_blocks(pad_dim(real, padded, dim=1, value=False), size, dim=1)  # [B, nb, bs]
        block = torch.arange(n_blocks, device=x.device)

        # Window: blocks b-1, b, b+1, leaving out global blocks (they come once, through the global group).
        key_block = neighbours(block[:, None].expand(n_blocks, size), 1, 1, dim=0, fill=-1)  # [nb, 3 bs]
        window_valid = (
            neighbours(real_b, 1, 1, dim=1, fill=False)[:, None, :, None, :]
            & (key_block >= n_global)[None, None, :, None, :]
        )
        window_v = neighbours(vb, 1, 1, dim=2)
        scores = [qb @ neighbours(kb, 1, 1, dim=2).transpose(-1, -2)]
        valid = [window_valid]
        values = [lambda p: p @ window_v]
        if n_global:
            global_k, global_v = kb[:, :, :n_global].flatten(2, 3), vb[:, :, :n_global].flatten(2, 3)
            scores.append(shared_scores(qb, global_k))
            valid.append(real_b[:, None, None, None, :n_global].flatten(-2))
            values.append(lambda p: shared_values(p, global_v))
        picks = self.random_blocks[:, :n_blocks]  # [H, nb, r]
        if picks.shape[-1]:
            chosen = (picks >= 0) & (picks < n_blocks)
            picks = picks.clamp(0, n_blocks - 1)
            head = torch.arange(self.n_heads, device=x.device)[:, None, None]
            random_v = vb[:, head, picks].flatten(3, 4)
            scores.append(qb @ kb[:, head, picks].flatten(3, 4).transpose(-1, -2))  # keys [B, H, nb, r * bs, Dh]
            valid.append((real_b[:, picks] & chosen[None, :, :, :, None]).flatten(3, 4)[:, :, :, None, :])
            values.append(lambda p: p @ random_v)
        probs, _ = joint_softmax(scores, valid, self.dropout, self.training)
        y = sum(value(p.to(v.dtype)) for value, p in zip(values, probs, strict=True)).flatten(2, 3)
        if n_global:
            g = n_global * size
            y = torch.cat([self.attend_all(q[:, :, :g], k, v, real), y[:, :, g:]], dim=2)
        return self.finish(y, length)
