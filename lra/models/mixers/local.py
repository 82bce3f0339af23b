"""Local attention: softmax attention inside non-overlapping blocks (the LRA "Local Attention" baseline)."""

from __future__ import annotations

import torch

from lra.errors import LRAError
from lra.models.mixers.blocks import BlockMixerBase, joint_softmax, pad_dim, padded_length, real_tokens, to_blocks
from lra.models.mixers.registry import register


@register("local")
class LocalAttention(BlockMixerBase):
    """Each token attends to the real tokens of its own block of `block_size` consecutive positions.

    The sequence is padded internally to a multiple of the block size (those slots are masked keys). A sequence
    shorter than `block_size` is one block, i.e. exact attention. Memory is O(L * block_size).
    """

    def __init__(self, d_model: int, n_heads: int, max_len: int, dropout: float, block_size: int = 50, **base) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if block_size < 1:
            raise LRAError(f"model.block_size={block_size} must be a positive integer")
        self.block_size = block_size

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        size = min(self.block_size, length)
        padded = padded_length(length, size)
        q, k, v = (to_blocks(pad_dim(t, padded, dim=2), size, dim=2) for t in self.heads(x))  # [B, H, nb, bs, Dh]
        real = to_blocks(pad_dim(real_tokens(mask), padded, dim=1, value=False), size, dim=1)  # [B, nb, bs]
        (probs,), _ = joint_softmax([q @ k.transpose(-1, -2)], [real[:, None, :, None, :]], self.dropout, self.training)
        y = (probs.to(v.dtype) @ v).flatten(2, 3)
        return self.finish(y, length)
