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


# The release draws random key blocks only among the blocks of the first this-many tokens.
RELEASE_RANDOM_SPAN = 1024
# Random key blocks per query block and head: the release's `num_rand_blocks`, which no released block passes on.
RELEASE_N_RANDOM = 3


def release_candidates(query_block: int, n_blocks: int, last: int) -> list[int]:
    """The key blocks the release may draw at random for middle query block `query_block` (1 .. n_blocks - 2),
    as its `get_block_rand_mask` slices them: from blocks 1 .. `last` (at most n_blocks - 2), without the query
    block's window, with its special cases for the second, third, third-last and second-last query blocks."""
    a = list(range(1, n_blocks - 1))  # neither the first nor the last block (both global)
    i = query_block
    if i == 1:
        return a[2:last]
    if i == 2:
        return a[3:last]
    if i == n_blocks - 3:
        return a[: last - 4]
    if i == n_blocks - 2:
        return a[: last - 3]
    start, end = i - 2, i
    if start > last:
        return a[:last]
    if end + 1 == last:
        return a[:start]
    return a[:start] + a[end + 1 : last]


def release_random_blocks(
    n_heads: int, n_blocks: int, block_size: int, n_random: int, generator: torch.Generator
) -> torch.Tensor:
    """[H, n_blocks, n_random] random key blocks of each head and query block of a padded sequence of `n_blocks`
    blocks, drawn as the release does: `n_random` distinct candidates (see `release_candidates`) uniformly at random,
    one head after the other. -1 where there are none: the first and last query block (global), and the rows of
    sequences under 8 blocks, where the release fails and the candidates there are (fewer than 3) are taken."""
    span = min(n_blocks * block_size, RELEASE_RANDOM_SPAN)
    last = span // block_size - 1 if span > 2 * block_size else n_blocks - 1
    picks = torch.full((n_heads, n_blocks, n_random), -1, dtype=torch.long)
    rows = [(i, torch.tensor(release_candidates(i, n_blocks, last), dtype=torch.long)) for i in range(1, n_blocks - 1)]
    for head in range(n_heads):
        for i, candidates in rows:
            chosen = candidates[torch.randperm(len(candidates), generator=generator)[:n_random]]
            picks[head, i, : len(chosen)] = chosen
    return picks


@register("bigbird", impl="release")
class BigBirdRelease(BlockMixerBase):
    """BigBird as the LRA release computed it (`models/bigbird/bigbird_attention.py`):

    - the sequence is padded with zero vectors to a multiple of `block_size`, always by 1 .. `block_size` positions
      (a whole block when it is a multiple already). Those positions' mask is padded with -1e9, which a boolean mask
      reads as True: they are unmasked keys with zero key and value, so each query that sees them spends softmax
      mass exp(0) on them (real outputs shrink, and depend on how far the length is from a multiple of the block);
    - the first and the last block of the padded sequence are global (attend to and are attended by everything);
      every other query block b attends to blocks b-1, b, b+1, the two global blocks and 3 random blocks per head;
    - random blocks are drawn per head, for each padded length, among blocks 1 .. min(L, 1024) / block_size - 1
      (the first 1024 tokens), outside the window, by the release's rules (`release_candidates`);
    - no attention dropout (the sparse path takes no dropout rate); padded query rows output zero.

    `block_size` is used (the release passes it on). `n_random` and `n_global_blocks` are ignored: the release
    hard-wired 3 random blocks and the first-and-last global blocks. `dropout` (attention dropout) is ignored.
    `seed` seeds the draws; the release seeded numpy with the layer index (`connectivity_seed=lyr`), so every layer
    had its own fixed pattern. None: a seed drawn from torch's global RNG, so each layer gets its own under a fixed
    run seed. The draws for every padded length up to `max_len` are made at construction into the persistent
    buffer `random_blocks` [n_blocks, H, n_blocks, 3] (saved in checkpoints; the same in training and evaluation).
    Masked keys get exactly zero weight (the release adds -10000 to their logits, which is zero weight in float32).
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
        super().__init__(d_model, n_heads, max_len, 0.0, **base)
        if block_size < 1:
            raise LRAError(f"model.block_size={block_size} must be a positive integer")
        self.block_size = block_size
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        most = max_len // block_size + 1  # blocks of the longest padded sequence
        drawn = torch.full((most, n_heads, most, RELEASE_N_RANDOM), -1, dtype=torch.long)
        for n_blocks in range(1, most + 1):
            # One seeding per length, as the release seeds numpy anew for each (traced) sequence length.
            generator = torch.Generator().manual_seed(seed)
            picks = release_random_blocks(n_heads, n_blocks, block_size, RELEASE_N_RANDOM, generator)
            drawn[n_blocks - 1, :, :n_blocks] = picks
        self.register_buffer("random_blocks", drawn)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        size = self.block_size
        padded = length + size - length % size  # always at least one appended position, as released
        n_blocks = padded // size
        if n_blocks > self.random_blocks.shape[0]:
            raise LRAError(f"bigbird got a sequence of {length} tokens, longer than its max_len; raise task.max_len")
        last = n_blocks - 1
        q, k, v = (pad_dim(t, padded, dim=2) for t in self.heads(x))  # appended rows: zero q, k, v (bias-free)
        real = pad_dim(real_tokens(mask), padded, dim=1, value=True)  # appended rows count as real, as released
        qb, kb, vb = (to_blocks(t, size, dim=2) for t in (q, k, v))  # [B, H, nb, bs, Dh]
        real_b = to_blocks(real, size, dim=1)  # [B, nb, bs]
        block = torch.arange(n_blocks, device=x.device)

        # Window b-1, b, b+1 without the global blocks (they come once, through the global group).
        key_block = neighbours(block[:, None].expand(n_blocks, size), 1, 1, dim=0, fill=-1)  # [nb, 3 bs]
        in_window = (key_block > 0) & (key_block < last)
        window_valid = neighbours(real_b, 1, 1, dim=1, fill=False)[:, None, :, None, :] & in_window[None, None, :, None]
        window_v = neighbours(vb, 1, 1, dim=2)
        scores = [qb @ neighbours(kb, 1, 1, dim=2).transpose(-1, -2)]
        valid = [window_valid]
        values = [lambda p: p @ window_v]
        glob = block[0 : last + 1 : last] if n_blocks > 1 else block[:1]  # blocks 0 and last, a view: no host list
        global_k, global_v = kb[:, :, glob].flatten(2, 3), vb[:, :, glob].flatten(2, 3)
        scores.append(shared_scores(qb, global_k))
        valid.append(real_b[:, glob].flatten(1, 2)[:, None, None, None, :])
        values.append(lambda p: shared_values(p, global_v))
        picks = self.random_blocks[n_blocks - 1, :, :n_blocks]  # [H, nb, 3]
        chosen = picks >= 0
        picks = picks.clamp(min=0)
        head = torch.arange(self.n_heads, device=x.device)[:, None, None]
        random_v = vb[:, head, picks].flatten(3, 4)
        scores.append(qb @ kb[:, head, picks].flatten(3, 4).transpose(-1, -2))  # keys [B, H, nb, 3 bs, Dh]
        valid.append((real_b[:, picks] & chosen[None, :, :, :, None]).flatten(3, 4)[:, :, :, None, :])
        values.append(lambda p: p @ random_v)
        probs, _ = joint_softmax(scores, valid)
        y = sum(value(p.to(v.dtype)) for value, p in zip(values, probs, strict=True))  # [B, H, nb, bs, Dh]

        # The global blocks' queries attend to every key.
        y_global = self.attend_all(qb[:, :, glob].flatten(2, 3), k, v, real).unflatten(2, (len(glob), size))
        if n_blocks > 1:
            y = torch.cat([y_global[:, :, :1], y[:, :, 1:last], y_global[:, :, 1:]], dim=2)
        else:
            y = y_global
        y = y.flatten(2, 3) * real[:, None, :, None]
        return self.finish(y, length)
