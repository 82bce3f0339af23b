"""Block-sparse mixers (local, sparse, longformer, bigbird, reformer, sinkhorn) against dense references.

Each mixer is checked (1) to equal exact attention (the `attention` mixer with copied weights) when its pattern
covers the whole sequence, (2) to equal a dense masked SDPA with its own sparse pattern written out as an [L, L]
mask, and (3) to give the same real outputs whatever amount of padding is appended.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lra.models.mixers import build_mixer
from lra.models.mixers.base import merge_heads, split_heads

D, H, MAX_LEN = 32, 4, 64
ATOL = 1e-5


def build(name: str, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_mixer(name, d_model=D, n_heads=H, max_len=MAX_LEN, dropout=0.0, **options).eval()


def batch(length: int, n_real: tuple[int, int] = (40, 25), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, length, D, generator=g)
    mask = torch.zeros(2, length, dtype=torch.bool)
    for row, n in enumerate(n_real):
        mask[row, : min(n, length)] = True
    return x, mask


def dense(mixer, x, mask, allowed: torch.Tensor, qkv=None) -> torch.Tensor:
    """Output projection of SDPA on the mixer's own q/k/v, keys limited to `allowed` [(B|1), (H|1), L, L] & real."""
    q, k, v = (split_heads(t, H) for t in (qkv or mixer.qkv)(x).chunk(3, dim=-1))
    allowed = allowed & mask[:, None, None, :]
    allowed = allowed | ~allowed.any(dim=-1, keepdim=True)  # padded query rows: anything finite
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


def project(mixer, y: torch.Tensor) -> torch.Tensor:
    return mixer.out(merge_heads(y))


def attention_like(mixer) -> torch.nn.Module:
    """The exact `attention` mixer carrying `mixer`'s q/k/v and output weights."""
    reference = build("attention")
    reference.load_state_dict({k: v for k, v in mixer.state_dict().items() if k.split(".")[0] in ("qkv", "out")})
    return reference


def assert_real_close(y: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> None:
    assert y.shape == reference.shape
    diff = (y - reference)[mask].abs().max().item()
    assert diff < ATOL, f"max difference at real positions {diff:.2e}"


# (1) Exact attention when the pattern covers the whole sequence -----------------------------------------------------

COVERING = [
    ("local", {"block_size": 64}, 48),
    ("sparse", {"pattern": "fixed", "stride": 128, "causal": False}, 48),
    ("sparse", {"pattern": "fixed", "stride": 128, "causal": False, "global_first": False}, 48),
    ("sparse", {"pattern": "strided", "stride": 64, "causal": False}, 48),
    ("longformer", {"window": 128}, 48),
    ("longformer", {"window": 128, "separate_global": False, "n_global": 2}, 48),
    ("bigbird", {"block_size": 64, "n_random": 3}, 48),
    ("bigbird", {"block_size": 16, "n_random": 0}, 48),  # 3 blocks: window + global cover all, overlap deduplicated
    ("bigbird", {"block_size": 16, "n_random": 3}, 48),  # no block is left to draw at random
    ("sinkhorn", {"block_size": 64}, 48),
]


@pytest.mark.parametrize("name,options,length", COVERING, ids=[f"{n}-{o}" for n, o, _ in COVERING])
def test_equals_exact_attention_when_pattern_covers_sequence(name, options, length):
    mixer = build(name, **options)
    if getattr(mixer, "qkv_global", None) is not None:
        mixer.qkv_global.weight.data.copy_(mixer.qkv.weight.data)
    x, mask = batch(length)
    with torch.no_grad():
        assert_real_close(mixer(x, mask), attention_like(mixer)(x, mask), mask)


def test_a_narrow_pattern_is_not_exact_attention():
    """Guards the test above: the comparison does notice a pattern that leaves keys out."""
    mixer = build("local", block_size=8)
    x, mask = batch(48)
    with torch.no_grad():
        diff = (mixer(x, mask) - attention_like(mixer)(x, mask))[mask].abs().max().item()
    assert diff > 1e-2


# (2) The sparse pattern itself, against a dense [L, L] mask ----------------------------------------------------------

L = 45
ROW, COL = torch.arange(L)[:, None], torch.arange(L)[None, :]  # query i, key j


def sparse_allowed(pattern: str, stride: int, summary: int, causal: bool, global_first: bool) -> torch.Tensor:
    g = int(global_first)
    pi, pj = ROW - g, COL - g
    if pattern == "fixed":
        allowed = (pi // stride == pj // stride) | (pj % stride >= stride - summary)
    else:
        allowed = ((pi - pj).abs() < stride) | ((pi - pj) % stride == 0)
    if causal:
        allowed &= pj <= pi
    if global_first:
        allowed |= (ROW == 0) | (COL == 0)
    return allowed


SPARSE_CASES = [(p, c, gf) for p in ("fixed", "strided") for c in (False, True) for gf in (False, True)]


@pytest.mark.parametrize("pattern,causal,global_first", SPARSE_CASES)
def test_sparse_matches_dense_pattern(pattern, causal, global_first):
    mixer = build("sparse", pattern=pattern, stride=8, summary=3, causal=causal, global_first=global_first)
    x, mask = batch(L)
    allowed = sparse_allowed(pattern, 8, 3, causal, global_first)
    with torch.no_grad():
        assert_real_close(mixer(x, mask), project(mixer, dense(mixer, x, mask, allowed)), mask)


def test_local_matches_dense_pattern():
    mixer = build("local", block_size=8)
    x, mask = batch(L)
    with torch.no_grad():
        assert_real_close(mixer(x, mask), project(mixer, dense(mixer, x, mask, ROW // 8 == COL // 8)), mask)


@pytest.mark.parametrize("window,n_global,separate", [(8, 1, True), (7, 2, False), (0, 1, True), (8, 0, True)])
def test_longformer_matches_dense_pattern(window, n_global, separate):
    mixer = build("longformer", window=window, n_global=n_global, separate_global=separate)
    x, mask = batch(L)
    with torch.no_grad():
        y = dense(mixer, x, mask, ((ROW - COL).abs() <= window // 2) | (COL < n_global))
        if n_global:  # global rows: every key, through the global projections
            y_global = dense(mixer, x, mask, torch.ones(L, L, dtype=torch.bool), qkv=mixer.qkv_global)
            y[:, :, :n_global] = y_global[:, :, :n_global]
        assert_real_close(mixer(x, mask), project(mixer, y), mask)


@pytest.mark.parametrize("length,n_global_blocks", [(61, 1), (64, 2), (45, 0)])
def test_bigbird_matches_dense_pattern(length, n_global_blocks):
    size = 8
    mixer = build("bigbird", block_size=size, n_random=2, n_global_blocks=n_global_blocks, seed=3)
    x, mask = batch(length)
    bi, bj = torch.arange(length)[:, None] // size, torch.arange(length)[None, :] // size
    allowed = (((bi - bj).abs() <= 1) | (bi < n_global_blocks) | (bj < n_global_blocks)).repeat(H, 1, 1)
    table = mixer.random_blocks  # [H, blocks, r]
    for h in range(H):
        picked = (table[h][bi] == bj[..., None]).any(dim=-1)  # key block j drawn for query block i
        allowed[h] |= picked
    with torch.no_grad():
        assert_real_close(mixer(x, mask), project(mixer, dense(mixer, x, mask, allowed[None])), mask)


# Reformer ------------------------------------------------------------------------------------------------------------


def shared_qk(mixer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q, v = mixer.heads(x)
    return q, F.normalize(q, dim=-1), v


def reformer_reference(mixer, x, mask, allowed: torch.Tensor) -> torch.Tensor:
    """Exact shared-QK attention over `allowed` real keys; a token sees itself only when nothing else is allowed."""
    q, k, v = shared_qk(mixer, x)
    length = x.shape[1]
    allowed = allowed & mask[:, None, None, :]
    eye = torch.eye(length, dtype=torch.bool)
    has_other = (allowed & ~eye).any(dim=-1, keepdim=True)
    allowed = allowed & ~(eye & has_other)
    allowed = allowed | ~allowed.any(dim=-1, keepdim=True)
    return project(mixer, F.scaled_dot_product_attention(q, k, v, attn_mask=allowed))


@pytest.mark.parametrize("n_hashes", [1, 3])
def test_reformer_one_bucket_is_exact_shared_qk_attention(n_hashes):
    mixer = build("reformer", n_hashes=n_hashes, n_buckets=1, bucket_size=64)
    x, mask = batch(L)
    with torch.no_grad():
        assert_real_close(mixer(x, mask), reformer_reference(mixer, x, mask, torch.ones(L, L, dtype=torch.bool)), mask)


@pytest.mark.parametrize("n_hashes,n_buckets,bucket_size", [(1, 4, 8), (2, 4, 8), (3, 6, 5)])
def test_reformer_equals_attention_over_union_of_chunk_windows(n_hashes, n_buckets, bucket_size):
    """Several buckets and rounds: with the duplicate correction, the rounds' combination is exact attention over
    the union of the chunk windows (own chunk + previous chunk after sorting by bucket, then position)."""
    mixer = build("reformer", n_hashes=n_hashes, n_buckets=n_buckets, bucket_size=bucket_size)
    x, mask = batch(L)
    padded = -(-L // bucket_size) * bucket_size
    with torch.no_grad():
        _, keys, _ = shared_qk(mixer, x)
        buckets = mixer.hash(F.pad(keys, (0, 0, 0, padded - L)))  # [B, H, R, Lp]
    real = F.pad(mask, (0, padded - L))
    buckets = buckets.masked_fill(~real[:, None, None, :], n_buckets)  # padding sorts last
    union = torch.zeros(2, H, padded, padded, dtype=torch.bool)
    for b in range(2):
        for h in range(H):
            for r in range(n_hashes):
                order = sorted(range(padded), key=lambda t: (int(buckets[b, h, r, t]), t))
                chunk = torch.empty(padded, dtype=torch.long)
                chunk[order] = torch.arange(padded) // bucket_size
                union[b, h] |= (chunk[None, :] == chunk[:, None]) | (chunk[None, :] == chunk[:, None] - 1)
    with torch.no_grad():
        assert_real_close(mixer(x, mask), reformer_reference(mixer, x, mask, union[:, :, :L, :L]), mask)


def test_reformer_token_with_no_other_key_attends_to_itself():
    mixer = build("reformer", n_hashes=2, n_buckets=4, bucket_size=8)
    x, mask = batch(L, n_real=(1, 1))
    with torch.no_grad():
        _, _, v = shared_qk(mixer, x)
        assert_real_close(mixer(x, mask), project(mixer, v), mask)


def test_reformer_eval_is_deterministic_and_training_rehashes():
    mixer = build("reformer", n_hashes=2, n_buckets=8, bucket_size=4)
    x, mask = batch(L)
    with torch.no_grad():
        assert torch.equal(mixer(x, mask), mixer(x, mask))
        mixer.train()
        torch.manual_seed(1)
        first = mixer(x, mask)
        torch.manual_seed(2)
        assert not torch.allclose(first, mixer(x, mask))


# (3) Appended padding ------------------------------------------------------------------------------------------------

SMALL_BLOCKS = [
    ("local", {"block_size": 8}),
    ("sparse", {"pattern": "fixed", "stride": 8, "summary": 2}),
    ("sparse", {"pattern": "strided", "stride": 8, "causal": False}),
    ("longformer", {"window": 8}),
    ("bigbird", {"block_size": 8, "n_random": 2}),
    ("reformer", {"n_hashes": 2, "n_buckets": 4, "bucket_size": 8}),
    ("sinkhorn", {"block_size": 8}),
]


@pytest.mark.parametrize("name,options", SMALL_BLOCKS, ids=[f"{n}-{o}" for n, o in SMALL_BLOCKS])
def test_appended_padding_does_not_change_real_outputs(name, options):
    """Same real tokens padded to n+8 and to n+24 (different pad content): equal outputs at real positions.

    Holds for all six: blocks are counted from the start, BigBird's random blocks and Reformer's bucket count are
    fixed from max_len, Reformer sorts padding after every real token, Sinkhorn keeps pad blocks out of the sort."""
    mixer = build(name, **options)
    n = 37
    g = torch.Generator().manual_seed(5)
    real_x = torch.randn(2, n, D, generator=g)
    outputs = []
    for extra in (8, 24):
        x = torch.cat([real_x, 4 * torch.randn(2, extra, D, generator=g)], dim=1)
        mask = torch.zeros(2, n + extra, dtype=torch.bool)
        mask[0, :n] = True
        mask[1, :20] = True
        with torch.no_grad():
            outputs.append(mixer(x, mask)[:, :n])
    assert_real_close(outputs[0], outputs[1], mask[:, :n])


# BigBird's random blocks ---------------------------------------------------------------------------------------------


def test_bigbird_random_blocks_are_fixed_across_calls_and_modes():
    mixer = build("bigbird", block_size=8, n_random=2)
    table = mixer.random_blocks.clone()
    x, mask = batch(MAX_LEN)
    with torch.no_grad():
        y_eval = mixer(x, mask)
        y_again = mixer(x, mask)
        y_train = mixer.train()(x, mask)  # dropout=0: only the pattern could differ
    assert torch.equal(y_eval, y_again) and torch.equal(y_eval, y_train)
    assert torch.equal(mixer.random_blocks, table)
    assert "random_blocks" in mixer.state_dict()  # saved with checkpoints


def test_bigbird_random_blocks_follow_the_seed_and_avoid_window_and_global():
    def table(**options):
        return build_mixer("bigbird", D, H, MAX_LEN, 0.0, block_size=8, n_random=3, **options).random_blocks

    assert torch.equal(table(seed=7), table(seed=7))
    assert not torch.equal(table(seed=7), table(seed=8))
    torch.manual_seed(0)
    first, second = table(), table()  # seed=None: per layer, from the global RNG
    assert not torch.equal(first, second)
    picks = table(seed=7)
    query_block = torch.arange(picks.shape[1])[None, :, None]
    drawn = picks >= 0
    assert drawn.any()
    assert ((picks - query_block).abs() > 1)[drawn].all() and (picks >= 1)[drawn].all()
    for row in picks.flatten(0, 1):
        kept = row[row >= 0]
        assert kept.unique().numel() == kept.numel()


# dtype and degenerate masks -----------------------------------------------------------------------------------------

NAMES = ["local", "sparse", "longformer", "bigbird", "reformer", "sinkhorn"]


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_in_bfloat16_out(name):
    mixer = build(name).to(torch.bfloat16)
    x, mask = batch(MAX_LEN)
    with torch.no_grad():
        y = mixer(x.to(torch.bfloat16), mask)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()


@pytest.mark.parametrize("name,options", SMALL_BLOCKS, ids=[f"{n}-{o}" for n, o in SMALL_BLOCKS])
def test_no_nan_with_empty_sequence_and_padded_blocks(name, options):
    """A sequence with no real token, and one with a single real token among fully padded blocks."""
    mixer = build(name, **options).train()
    x, mask = batch(MAX_LEN, n_real=(0, 1))
    x.requires_grad_(True)
    y = mixer(x, mask)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in mixer.parameters() if p.grad is not None)
