"""Reformer LSH attention (Kitaev et al. 2020): shared-QK attention within hash buckets, sorted and chunked."""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from lra.errors import LRAError
from lra.models.mixers.base import HeadedMixer
from lra.models.mixers.blocks import joint_softmax, neighbours, pad_dim, padded_length, real_tokens, to_blocks
from lra.models.mixers.registry import register

# Added to a token's score for itself: it then gets weight only when nothing else is valid (paper, section 2).
SELF_PENALTY = 1e5


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, H, L, *rest], index [B, H, R, L] -> x[b, h, index[b, h, r, t]] as [B, H, R, L, *rest]."""
    rest = x.shape[3:]
    flat = index.flatten(2, 3).reshape(*index.shape[:2], -1, *([1] * len(rest))).expand(-1, -1, -1, *rest)
    return x.gather(2, flat).unflatten(2, index.shape[2:])


@register("reformer")
class ReformerAttention(HeadedMixer):
    """LSH attention with shared query/key projection, after the paper:

    - keys are the unit-normalised queries, k_j = q_j / ||q_j||; score(i, j) = q_i . k_j / sqrt(d_head);
    - each of `n_hashes` rounds hashes k with a random rotation R: h(x) = argmax([xR; -xR]) over `n_buckets`
      buckets (fresh rotations every training step as in the paper; a fixed seeded set in eval, for determinism);
    - tokens are sorted by (bucket, position) and split into chunks of `bucket_size`; a chunk attends to itself and
      the previous chunk (not cyclically: the first chunk has none, so appended padding cannot wrap around);
    - a token attends to itself only if it has no other valid key; padded keys never count. Padded tokens are put in
      an extra bucket after all the real ones, so padding never moves a real token's chunk;
    - rounds are combined with the paper's duplicate correction (a key seen in N rounds has its score lowered by
      log N) and weighted by their softmax normalisers: with one bucket and one chunk this is exact shared-QK
      attention, for any number of rounds.

    `bucket_size=None` uses ceil(max_len / n_buckets): then chunks hold about one bucket, and with `n_buckets=10`
    this is the LRA release's setting (10 buckets, the sequence cut into 10 chunks per hash).
    `n_buckets=None` derives it as max_len / bucket_size rounded up to even. Both are fixed from `max_len`, not from
    the batch, so that appended padding does not change any real token's bucket. Memory O(n_hashes * L * 2 bucket_size).
    """

    roles = "qv"

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        n_hashes: int = 1,
        n_buckets: int | None = 10,
        bucket_size: int | None = None,
        seed: int | None = None,
        **base,
    ) -> None:
        super().__init__(d_model, n_heads, max_len, dropout, **base)
        if n_hashes < 1:
            raise LRAError(f"model.n_hashes={n_hashes} must be a positive integer")
        if n_buckets is None and bucket_size is None:
            raise LRAError("model.n_buckets and model.bucket_size are both null; set at least one of them")
        if bucket_size is None:
            bucket_size = math.ceil(max_len / n_buckets)
        if n_buckets is None:
            n_buckets = max(1, math.ceil(max_len / bucket_size))
            n_buckets += n_buckets % 2 if n_buckets > 1 else 0
        if bucket_size < 1 or n_buckets < 1 or (n_buckets > 1 and n_buckets % 2):
            raise LRAError(
                f"model.n_buckets={n_buckets} must be 1 or even and model.bucket_size={bucket_size} positive"
            )
        self.n_hashes = n_hashes
        self.n_buckets = n_buckets
        self.bucket_size = bucket_size
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("rotations", torch.randn(self._rotation_shape(), generator=generator))

    def _rotation_shape(self) -> tuple[int, int, int, int]:
        return (self.n_heads, self.head_dim, self.n_hashes, max(self.n_buckets // 2, 1))

    def hash(self, keys: torch.Tensor) -> torch.Tensor:
        """Bucket ids [B, H, R, L] of unit keys [B, H, L, Dh]."""
        if self.n_buckets == 1:
            return keys.new_zeros((*keys.shape[:2], self.n_hashes, keys.shape[2]), dtype=torch.long)
        if self.training:
            rotations = torch.randn(self._rotation_shape(), device=keys.device)
        else:
            rotations = self.rotations
        with torch.no_grad():
            rotated = torch.einsum("bhld,hdrk->bhrlk", keys.float(), rotations.float())
            return torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        chunk = min(self.bucket_size, length)
        padded = padded_length(length, chunk)
        n_chunks = padded // chunk
        queries, values = (pad_dim(t, padded, dim=2) for t in self.heads(x))
        keys = F.normalize(queries.float(), dim=-1).to(queries.dtype)
        real = pad_dim(real_tokens(mask), padded, dim=1, value=False)  # [B, Lp]

        # Sort each round by (bucket, position), padding in an extra last bucket.
        buckets = self.hash(keys).masked_fill(~real[:, None, None, :], self.n_buckets)
        position = torch.arange(padded, device=x.device)
        order = (buckets * padded + position).argsort(dim=-1)  # [B, H, R, Lp]: sorted slot -> token
        rank = order.argsort(dim=-1)  # token -> sorted slot
        before = int(n_chunks > 1)
        token_q = to_blocks(order, chunk, dim=-1)  # [B, H, R, nc, m]
        token_k = neighbours(token_q, before, 0, dim=3, fill=-1)  # [B, H, R, nc, (1 + before) m]
        safe_k = token_k.clamp(min=0).flatten(3, 4)
        q = to_blocks(gather_tokens(queries * self.head_dim**-0.5, order), chunk, dim=3)  # [B, H, R, nc, m, Dh]
        k = gather_tokens(keys, safe_k).unflatten(3, token_k.shape[3:])
        v = gather_tokens(values, safe_k).unflatten(3, token_k.shape[3:])
        key_real = real[:, None, None, :].expand_as(buckets).gather(-1, safe_k).unflatten(3, token_k.shape[3:])
        valid = (key_real & (token_k >= 0))[..., None, :]  # [B, H, R, nc, 1, K]

        scores = (q @ k.transpose(-1, -2)).float()
        scores = scores - SELF_PENALTY * (token_q[..., :, None] == token_k[..., None, :])
        if self.n_hashes > 1:
            scores = scores - self.duplicates(rank // chunk, token_q, token_k.clamp(min=0), before).log()
        (probs,), log_norm = joint_softmax([scores], [valid], self.dropout, self.training, with_log_norm=True)
        y = (probs.to(v.dtype) @ v).flatten(3, 4)  # [B, H, R, Lp, Dh] in sorted order
        # Back to token order, then weigh each round by its share of the total softmax mass.
        y = y.gather(3, rank[..., None].expand_as(y))
        log_norm = log_norm.flatten(3, 4).squeeze(-1).gather(3, rank)
        weight = torch.softmax(log_norm, dim=2).to(y.dtype)
        y = (weight[..., None] * y).sum(dim=2)
        return self.finish(y, length)

    def duplicates(
        self, chunk_of: torch.Tensor, token_q: torch.Tensor, token_k: torch.Tensor, before: int
    ) -> torch.Tensor:
        """N(i, j): in how many rounds key j lies in query i's chunk window, [B, H, R, nc, m, K] float."""
        count = torch.zeros(*token_q.shape, token_k.shape[-1], device=token_q.device)
        for r in range(self.n_hashes):
            of_q = chunk_of[:, :, r].gather(-1, token_q.flatten(2)).view_as(token_q)[..., :, None]
            of_k = chunk_of[:, :, r].gather(-1, token_k.flatten(2)).view_as(token_k)[..., None, :]
            seen = (of_k == of_q) | ((of_k == of_q - 1) if before else False)
            count += seen
        return count.clamp(min=1.0)


@register("reformer", impl="release")
class ReformerRelease(HeadedMixer):
    """LSH attention as the LRA release computed it (`models/reformer/reformer_attention.py`):

    - the sequence is padded with zero vectors by 1 .. 10 positions to a multiple of 10 (`chunk_len=10`, used for
      nothing else); those positions take part like tokens (zero query and value, bucket 0);
    - shared QK without normalisation: keys are the queries themselves, score(i, j) = q_i . q_j * sqrt(d_head)
      (multiplied, not divided); no self-mask, no padding mask, no dropout, no duplicate correction;
    - one round of hashing (`n_hashes=1`) into 10 buckets (`n_buckets=10`), h(x) = argmax([xR; -xR]), with one
      rotation R drawn from a fixed key (PRNGKey(0)): the same for every head, layer, step, and in train and eval;
    - tokens are sorted by (round, bucket, position) and cut into n_hashes * n_buckets chunks, of padded length / 10
      tokens each; a chunk attends to itself and the chunk before it, cyclically (the first chunk to the last);
      rounds are weighted by their softmax normalisers;
    - the attention width is d_model (the release overwrites `qkv_features` with the input width, so
      `model.qkv_dim` is ignored), and there is no output projection: the [B, H, L, Dh] output is *reshaped* to
      [B, L, H * Dh] without moving the head axis, so output position p holds head h = (p H + j) // L's output at
      token (p H + j) mod L for j = 0 .. H-1 (L padded). Outputs are cut back to the input length after that.

    The padding mask is not used (`uses_mask = False`): pads are keys like tokens. `n_hashes`, `n_buckets`,
    `bucket_size` and `seed` are ignored: no released configuration passed the attention anything but its
    defaults (1 hash, 10 buckets, chunk_len 10), and the rotation's key was fixed. R comes from a torch generator
    seeded with 0 (the role of PRNGKey(0); not the same numbers). Computed in float32, O(L^2 / 5) memory per head.
    """

    roles = "qv"
    uses_mask = False
    n_hashes = 1
    n_buckets = 10
    pad_multiple = 10  # the release's chunk_len: the padding's multiple
    rotation_seed = 0

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        dropout: float,
        n_hashes: int = 1,
        n_buckets: int | None = 10,
        bucket_size: int | None = None,
        seed: int | None = None,
        **base,
    ) -> None:
        base["qkv_dim"] = None  # the release attends at the input width
        super().__init__(d_model, n_heads, max_len, 0.0, **base)
        self.out = None  # no output projection in the release
        generator = torch.Generator().manual_seed(self.rotation_seed)
        shape = (self.head_dim, self.n_hashes, self.n_buckets // 2)
        self.register_buffer("rotations", torch.randn(shape, generator=generator), persistent=False)

    def hash(self, queries: torch.Tensor) -> torch.Tensor:
        """Bucket ids [B, H, R, L] of queries [B, H, L, Dh], the same rotations for every head."""
        with torch.no_grad():
            rotated = torch.einsum("bhld,drk->bhrlk", queries.float(), self.rotations)
            return torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        step = math.lcm(self.pad_multiple, self.n_buckets)  # = 10: chunks must tile the padded length
        padded = length + step - length % step  # always at least one appended position, as released
        queries, values = (pad_dim(t, padded, dim=2) for t in self.heads(x))  # appended rows: zero (bias-free)
        device = x.device.type  # autocast exists on cpu/cuda/xpu/mps...; elsewhere there is nothing to turn off
        off = torch.autocast(device, enabled=False) if torch.amp.is_autocast_available(device) else nullcontext()
        with off:
            y = self.attend(queries.float(), values.float())
        return self.finish(y.to(x.dtype), length)

    def attend(self, queries: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """[B, H, Lp, Dh] queries (= keys) and values -> [B, H, Lp, Dh], in float32."""
        b, h, n, dh = queries.shape
        rounds = self.n_hashes
        # One sorted sequence of all rounds: slot -> (round, token) as round * n + token, by (round, bucket, position).
        buckets = self.hash(queries) + self.n_buckets * torch.arange(rounds, device=queries.device)[:, None]
        position = torch.arange(n, device=queries.device)
        order = (buckets * n + position).flatten(2).argsort(dim=-1)  # [B, H, R * Lp]
        token = order % n
        chunks = rounds * self.n_buckets
        sq = gather_tokens(queries, token[:, :, None]).squeeze(2).unflatten(2, (chunks, -1))  # [B, H, C, m, Dh]
        sv = gather_tokens(values, token[:, :, None]).squeeze(2).unflatten(2, (chunks, -1))
        # Keys: the chunk itself, then the one before it, cyclically (chunk 0 looks back at the last chunk).
        sk = torch.cat([sq, sq.roll(1, dims=2)], dim=3)  # [B, H, C, 2m, Dh]
        sv = torch.cat([sv, sv.roll(1, dims=2)], dim=3)
        scores = sq @ sk.transpose(-1, -2) * dh**0.5
        log_norm = scores.logsumexp(dim=-1, keepdim=True)
        y = (torch.exp(scores - log_norm) @ sv).flatten(2, 3)  # [B, H, R * Lp, Dh] in sorted order
        # Back to (round, token) order, then weigh the rounds by their share of the softmax mass.
        rank = order.argsort(dim=-1)
        y = y.gather(2, rank[..., None].expand_as(y)).unflatten(2, (rounds, n))  # [B, H, R, Lp, Dh]
        weight = torch.softmax(log_norm.flatten(2).gather(2, rank).unflatten(2, (rounds, n)), dim=2)
        return (weight[..., None] * y).sum(dim=2)

    def finish(self, y: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """[B, H, Lp, Dh] -> [B, length, H * Dh] by a plain reshape, as released (no head transpose, no projection)."""
        b, h, n, dh = y.shape
        return y.reshape(b, n, h * dh)[:, :length]
