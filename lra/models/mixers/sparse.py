"""Sparse Transformer attention patterns (Child et al. 2019), merged into one head as in the LRA release; the
release's own sets (`SparseRelease`, impl=release) differ from the paper's."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from lra.errors import LRAError
from lra.models.mixers.attention import release_padded_rows
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

PATTERNS = ("fixed", "strided")

# Key groups of one softmax: scores, validity masks, and how each group's probabilities read its values.
Groups = tuple[list[torch.Tensor], list[torch.Tensor], list[Callable[[torch.Tensor], torch.Tensor]]]


@register("sparse")
class SparseAttention(BlockMixerBase):
    """Factorised sparse attention; with stride l, position i attends to the union of the paper's two sets A(1), A(2):

    - "fixed":   A(1) = {j : floor(j/l) = floor(i/l)} (own block), A(2) = {j : j mod l >= l - c} (the last c
                 "summary" positions of every block), c = `summary`;
    - "strided": A(1) = {j : |i - j| < l} (local band), A(2) = {j : (i - j) mod l = 0} (every l-th position).

    `causal` keeps only j <= i, as the paper defines the sets and as the released LRA code ran them (merged into
    one head; the release's own sets differ, see `SparseRelease`). `global_first` makes position 0 (the CLS token)
    attend to and be attended by every position, with the pattern laid over positions 1.., as the LRA code does when
    pooling reads CLS.
    Computed block-wise: memory O(L * (l + L c / l)) for "fixed", O(L * (3 l + L / l)) for "strided".
    A stride longer than the sequence makes both patterns exact attention (bar causality).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        pattern: str = "fixed",
        stride: int = 128,
        summary: int = 32,
        causal: bool = True,
        global_first: bool = True,
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if pattern not in PATTERNS:
            raise LRAError(f"model.pattern={pattern!r} is not a sparse pattern; use one of {', '.join(PATTERNS)}")
        if stride < 1:
            raise LRAError(f"model.stride={stride} must be a positive integer")
        if pattern == "fixed" and not 1 <= summary <= stride:
            raise LRAError(f"model.summary={summary} must be between 1 and model.stride={stride}")
        self.pattern = pattern
        self.stride = stride
        self.summary = summary
        self.causal = causal
        self.global_first = global_first

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        q, k, v = self.heads(x)
        real = real_tokens(mask)
        n_global = int(self.global_first and length > 1)
        rest = length - n_global
        stride = min(self.stride, rest)  # a stride beyond the sequence means the same pattern (one block / one band)
        padded = padded_length(rest, stride)
        qb, kb, vb = (to_blocks(pad_dim(t[:, :, n_global:], padded, dim=2), stride, dim=2) for t in (q, k, v))
        real_b = to_blocks(pad_dim(real[:, n_global:], padded, dim=1, value=False), stride, dim=1)  # [B, nb, l]
        pos_b = to_blocks(torch.arange(padded, device=x.device), stride, dim=0)  # [nb, l]

        if self.pattern == "fixed":
            scores, valid, values = self._fixed(qb, kb, vb, real_b, pos_b)
        else:
            scores, valid, values = self._strided(qb, kb, vb, real_b, pos_b)
        if n_global:
            # Every position also attends to the global token(s).
            scores.append(shared_scores(qb, k[:, :, :n_global]))
            valid.append(real[:, None, None, None, :n_global])
            values.append(lambda p: shared_values(p, v[:, :, :n_global]))
        probs, _ = joint_softmax(scores, valid, self.dropout, self.training)
        y = sum(value(p.to(v.dtype)) for value, p in zip(values, probs, strict=True)).flatten(2, 3)
        if n_global:
            y = torch.cat([self.attend_all(q[:, :, :n_global], k, v, real), y], dim=2)
        if self.impl == "release":  # padded query rows ignore the pattern and causality there: uniform over all keys
            y = release_padded_rows(y[:, :, :length], k, v, mask, self.dropout if self.training else 0.0)
        return self.finish(y, length)

    def _fixed(
        self, qb: torch.Tensor, kb: torch.Tensor, vb: torch.Tensor, real_b: torch.Tensor, pos_b: torch.Tensor
    ) -> Groups:
        n_blocks, stride = pos_b.shape
        c = min(self.summary, stride)
        own_valid = real_b[:, None, :, None, :]
        if self.causal:
            own_valid = own_valid & (pos_b[:, None, :] <= pos_b[:, :, None])
        cols = self._summary_columns(stride, c, kb.device)
        # Summary keys of all blocks, shared by every query block: [B, H, nb * s, Dh] (s summary positions a block).
        ks = kb[:, :, :, cols].flatten(2, 3)
        vs = vb[:, :, :, cols].flatten(2, 3)
        key_block = torch.arange(n_blocks, device=kb.device).repeat_interleave(ks.shape[2] // n_blocks)
        query_block = torch.arange(n_blocks, device=kb.device)[:, None]
        # Own-block summary keys are already in A(1); causal keeps earlier blocks only.
        other = key_block < query_block if self.causal else key_block != query_block  # [nb, nb * s]
        sum_valid = real_b[:, :, cols].flatten(1, 2)[:, None, None, None, :] & other[None, None, :, None, :]
        scores = [qb @ kb.transpose(-1, -2), shared_scores(qb, ks)]
        values = [lambda p: p @ vb, lambda p: shared_values(p, vs)]
        return scores, [own_valid, sum_valid], values

    def _summary_columns(self, stride: int, c: int, device: torch.device) -> slice | torch.Tensor:
        """Offsets within a block of the "fixed" pattern's summary positions A(2): the last c."""
        return slice(stride - c, stride)

    def _strided(
        self, qb: torch.Tensor, kb: torch.Tensor, vb: torch.Tensor, real_b: torch.Tensor, pos_b: torch.Tensor
    ) -> Groups:
        n_blocks, stride = pos_b.shape
        after = 0 if self.causal else 1
        # A(1), the band |i - j| < l, lies within blocks b-1 .. b+1.
        kn = neighbours(kb, 1, after, dim=2)
        vn = neighbours(vb, 1, after, dim=2)
        real_n = neighbours(real_b, 1, after, dim=1, fill=False)
        pos_n = neighbours(pos_b, 1, after, dim=0, fill=-4 * pos_b.numel())
        offset = pos_b[:, :, None] - pos_n[:, None, :]  # i - j, [nb, l, K]
        in_band = (offset >= 0) & (offset < stride) if self.causal else offset.abs() < stride
        band_valid = real_n[:, None, :, None, :] & in_band
        # A(2): query (n, r) and key (m, r) share the offset r within their blocks; m = n is already in the band.
        key_block = torch.arange(n_blocks, device=kb.device)
        other = key_block[None, :] < key_block[:, None] if self.causal else key_block[None, :] != key_block[:, None]
        col_valid = real_b.transpose(1, 2)[:, None, None] & other[None, None, :, None, :]  # [B, 1, nb, l, nb]
        scores = [qb @ kn.transpose(-1, -2), torch.einsum("bhnrd,bhmrd->bhnrm", qb, kb)]
        values = [lambda p: p @ vn, lambda p: torch.einsum("bhnrm,bhmrd->bhnrd", p, vb)]
        return scores, [band_valid, col_valid], values


@register("sparse", impl="release")
class SparseRelease(SparseAttention):
    """The Sparse Transformer as the LRA release ran it (`utils/train_utils.py` forces the patterns for every task,
    `models/sparse_transformer/sparse_attention.py` builds them): the union of Fixed1Pattern(block_size=50) and
    Fixed2Pattern(block_size=50, c=10), causal, one merged mask for all heads. Position i attends to j <= i with
    floor(j/50) = floor(i/50) (own block) or j mod 50 in {0, 40, ..., 49}: Fixed2 keeps the *first* position of
    every block as well as the last c = 10 (the paper's summary set is the last c only).

    `pattern`, `stride`, `summary` and `causal` are ignored: the release hard-wired fixed, 50, 10 and causal.
    `global_first` is used: the release's `use_cls_token`, set when `classifier_pool` is CLS (position 0 attends to
    and is attended by all, the pattern laid over positions 1..); on Retrieval it is set although the dual encoder
    prepends no CLS, so the first byte is the global position; Pathfinder pools MEAN, so it is off there.
    A padded query row is uniform over all L keys (`release_padded_rows`): the release combines its query x key
    padding mask with the pattern, so such a row has no allowed key at all.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        pattern: str = "fixed",
        stride: int = 128,
        summary: int = 32,
        causal: bool = True,
        **options,
    ) -> None:
        super().__init__(
            d_model, n_heads, max_len, dropout, pattern="fixed", stride=50, summary=10, causal=True, **options
        )

    def _summary_columns(self, stride: int, c: int, device: torch.device) -> slice | torch.Tensor:
        """Fixed2's positions: the first of the block and the last c (one set when a short block has both)."""
        return summary_columns(stride, c, device)


@functools.lru_cache(maxsize=16)
def summary_columns(stride: int, c: int, device: torch.device) -> torch.Tensor:
    """Made once per shape and device: a new tensor per forward would copy from the host every step."""
    return torch.tensor(sorted({0, *range(stride - c, stride)}), device=device)
