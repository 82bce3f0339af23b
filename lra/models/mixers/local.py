"""Local attention: softmax attention inside non-overlapping blocks (the LRA "Local Attention" baseline), and
`LocalRelease`, what the LRA release computed (strided groups); its helpers serve `SinkhornRelease` too."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lra.errors import LRAError
from lra.models.mixers.base import within
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

    def restrict(self, window: int | None) -> bool:
        self.window = window
        return True

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        size = min(self.block_size, length)
        padded = padded_length(length, size)
        q, k, v = (to_blocks(pad_dim(t, padded, dim=2), size, dim=2) for t in self.heads(x))  # [B, H, nb, bs, Dh]
        real = to_blocks(pad_dim(real_tokens(mask), padded, dim=1, value=False), size, dim=1)  # [B, nb, bs]
        valid = real[:, None, :, None, :]  # [B, 1, nb, 1, bs]
        if self.window is not None:  # the probe's band inside each block
            pos = to_blocks(torch.arange(padded, device=x.device), size, dim=0)  # [nb, bs]
            valid = valid & within(pos, pos, self.window)  # [B, 1, nb, bs, bs]
        (probs,), _ = joint_softmax([q @ k.transpose(-1, -2)], [valid], self.dropout, self.training)
        y = (probs.to(v.dtype) @ v).flatten(2, 3)
        return self.finish(y, length)


# The release's attention bias for a masked key: added to the score (not a fill), so a row with no allowed key is
# uniform over all its keys in float32 (|score| << ulp(1e10) = 1024), and masked keys in other rows get weight 0.
RELEASE_MASKED = -1e10


def strided_groups(t: torch.Tensor, n_groups: int, dim: int) -> torch.Tensor:
    """The release's block reshape: axis `dim` of length size * n_groups, read as (size, n_groups), made
    (n_groups, size). Group g holds positions g, g + n_groups, g + 2 n_groups, ... (strided, not contiguous)."""
    dim = dim % t.dim()
    return t.unflatten(dim, (t.shape[dim] // n_groups, n_groups)).transpose(dim, dim + 1)


def from_strided_groups(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Inverse of `strided_groups`: (n_groups, size) at `dim` back to one axis in position order."""
    dim = dim % t.dim()
    return t.transpose(dim, dim + 1).flatten(dim, dim + 1)


def release_chunk_mask(real: torch.Tensor, size: int) -> torch.Tensor:
    """The release's padding mask per group: [B, L'] -> [B, n_groups, size, size]. The release reshaped the
    *mask* into contiguous chunks (bs * n_blocks, block_size) while q, k, v were grouped strided, so group g's
    (query s, key t) entry is real[g * size + s] & real[g * size + t], the mask of other positions."""
    chunks = real.unflatten(1, (real.shape[1] // size, size))  # [B, nb, size]
    return chunks[:, :, :, None] & chunks[:, :, None, :]


def release_attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor, dropout: float, training: bool
) -> torch.Tensor:
    """Softmax attention as released: float32 scores plus -1e10 where not `allowed` (broadcastable to the
    scores), softmax, dropout on the weights. q (already scaled) [..., Lq, Dh], k, v [..., Lk, Dh]."""
    scores = (q @ k.transpose(-1, -2)).float()
    scores = scores + torch.where(allowed, 0.0, RELEASE_MASKED)
    probs = F.dropout(torch.softmax(scores, dim=-1), dropout, training=training)
    return probs.to(v.dtype) @ v


@register("local", impl="release")
class LocalRelease(LocalAttention):
    """Local attention as the LRA release computed it (models/local/local_attention.py):

    - the sequence is padded with `block_size - L % block_size` zero tokens: a whole extra block when L is
      already a multiple (with bias-free projections their q, k, v are 0);
    - groups are strided: with n = L' / block_size groups, position p attends to q iff p % n == q % n, so each
      query sees block_size keys spread over the whole sequence, not its neighbours;
    - the padding mask is cut into contiguous chunks instead (`release_chunk_mask`), so a group is masked with
      other positions' mask; the appended slots count as real (jnp.pad of the boolean mask with -1e9 is True);
      a row with no allowed key is uniform over its group (`release_attend`).

    Real outputs therefore depend on padded content: `uses_mask = False`. A sequence shorter than block_size is
    one group with block_size - L zero slots. Memory O(L' * block_size).
    """

    uses_mask = False

    def restrict(self, window: int | None) -> bool:
        return False  # strided groups: a band inside them is not a band over the sequence

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        size = self.block_size
        padded = length + size - length % size
        n_groups = padded // size
        q, k, v = (strided_groups(pad_dim(t, padded, dim=2), n_groups, dim=2) for t in self.heads(x))  # [B,H,n,bs,Dh]
        allowed = release_chunk_mask(pad_dim(mask, padded, dim=1, value=True), size)  # [B, n, bs, bs]
        y = release_attend(q, k, v, allowed[:, None], self.dropout, self.training)
        return self.finish(from_strided_groups(y, dim=2), length)
