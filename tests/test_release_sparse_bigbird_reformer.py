"""impl=release of the Sparse Transformer, BigBird and Reformer: what the LRA release code computed, pinned from its
maths written out here (`lra_benchmarks/utils/train_utils.py`, `models/sparse_transformer/sparse_attention.py`,
`models/bigbird/bigbird_attention.py`, `models/reformer/reformer_attention.py`), never from trained weights.

Dependency patterns come from autograd: output position i depends on input position j iff d y_i / d x_j != 0
(masked keys get exactly zero weight, so exactly zero gradient).
"""

from __future__ import annotations

import pytest
import torch

from lra.models.mixers import build_mixer

D, H = 8, 2


def build(name: str, d_model: int = D, n_heads: int = H, max_len: int = 64, impl: str = "release", **options):
    torch.manual_seed(0)
    return build_mixer(name, d_model=d_model, n_heads=n_heads, max_len=max_len, dropout=0.0, impl=impl, **options)


def batch(length: int, n_real: tuple[int, ...], d_model: int = D, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(len(n_real), length, d_model, generator=torch.Generator().manual_seed(seed))
    mask = torch.arange(length)[None, :] < torch.tensor(n_real)[:, None]
    return x, mask


def dependency(mixer, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, L, L] bool: output position i depends on input position j."""
    x = x.clone().requires_grad_(True)
    y = mixer(x, mask)
    length = y.shape[1]
    w = torch.randn(y.shape[-1], generator=torch.Generator().manual_seed(1))
    # One backward per output position i, batched: cotangent w at position i of every row.
    cotangents = torch.eye(length)[:, None, :, None] * w  # [L(i), 1, L, D] -> broadcast over the batch
    (grads,) = torch.autograd.grad(y, x, cotangents.expand(length, *y.shape), is_grads_batched=True)
    return (grads.abs().sum(dim=-1) > 0).transpose(0, 1)  # [L(i), B, L(j)] -> [B, i, j]


def only_head(mixer, head: int) -> None:
    """Make the output projection read one head, so the dependency pattern is that head's."""
    dh = mixer.head_dim
    with torch.no_grad():
        keep = torch.zeros_like(mixer.out.weight)
        keep[:, head * dh : (head + 1) * dh] = 1
        mixer.out.weight.mul_(keep)


def assert_real_rows(dep: torch.Tensor, expected: torch.Tensor, mask: torch.Tensor) -> None:
    """Real query rows depend exactly on the expected real keys."""
    for b in range(dep.shape[0]):
        want = expected[b] & mask[b][None, :] if expected.dim() == 3 else expected & mask[b][None, :]
        rows = mask[b]
        assert torch.equal(dep[b][rows], want[rows]), f"row {b}: {(dep[b][rows] != want[rows]).sum()} entries differ"


def test_release_builds_and_trains_on_a_padded_batch():
    for name in ("sparse", "bigbird", "reformer"):
        mixer = build(name, d_model=16, n_heads=4).train()
        x, mask = batch(37, (37, 5), d_model=16)
        x.requires_grad_(True)
        y = mixer(x, mask)
        assert type(mixer).__name__.endswith("Release") and y.shape == x.shape and torch.isfinite(y).all()
        y.square().mean().backward()
        assert x.grad.abs().sum() > 0
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in mixer.parameters())


# Sparse Transformer: Fixed1(50) | Fixed2(50, c=10), causal, CLS row and column global ------------------------------


def sparse_release_pattern(length: int, global_first: bool) -> torch.Tensor:
    """[L, L] from `_build_mask`: q >= k and (q // 50 == k // 50 or k % 50 == 0 or k % 50 >= 50 - 10), laid over
    positions 1.. with row and column 0 all True when `use_cls_token`."""
    g = int(global_first)
    r = torch.arange(length - g)
    q, k = r[:, None], r[None, :]
    fixed1 = q // 50 == k // 50
    fixed2 = (k % 50 == 0) | (k % 50 >= 40)
    pattern = (fixed1 | fixed2) & (k <= q)
    if g:
        pattern = torch.nn.functional.pad(pattern, (1, 0, 1, 0), value=True)
    return pattern


@pytest.mark.parametrize("global_first", [True, False])
def test_sparse_release_dependency_is_fixed1_or_fixed2_of_50_and_10(global_first):
    length = 121 if global_first else 120  # CLS + 120 / 120: three blocks of 50, the last one cut
    mixer = build("sparse", max_len=length, global_first=global_first)
    x, mask = batch(length, (length, 87))
    dep = dependency(mixer, x, mask)
    expected = sparse_release_pattern(length, global_first)
    assert_real_rows(dep, expected, mask)
    # The first position of an earlier block is seen (Fixed2's `remainder == 0`), the middle of one is not.
    offset = int(global_first)
    assert dep[0, offset + 110, offset + 50] and dep[0, offset + 110, offset + 0]
    assert not dep[0, offset + 110, offset + 60]


def test_sparse_release_ignores_the_pattern_options():
    """The release forced the fixed pattern, 50, 10 and causality whatever the model's options said."""
    x, mask = batch(121, (121, 60))
    default = build("sparse", max_len=121)
    other = build("sparse", max_len=121, pattern="strided", stride=7, summary=3, causal=False)
    other.load_state_dict(default.state_dict())
    assert torch.equal(default(x, mask), other(x, mask))


# BigBird: zero-padded to a multiple of the block, first and last block global, window of 3, 3 random blocks ------


def candidate_blocks(i: int, n_blocks: int, span_blocks: int) -> set[int]:
    """The release's random candidates for middle query block i, from `get_block_rand_mask` with a = [1 .. nb-2]
    and last = span_blocks - 1 (span = min(L, 1024) tokens), in set form: blocks 1 .. last without the window,
    with the release's special cases (for at least 8 blocks, where it runs)."""
    last = span_blocks - 1

    def upto(top: int) -> set[int]:  # blocks 1 .. top, never the last (global) block
        return set(range(1, min(top, n_blocks - 2) + 1))

    if i == 1:
        return upto(last) - {1, 2}
    if i == 2:
        return upto(last) - {1, 2, 3}
    if i == n_blocks - 3:
        return upto(last - 4)
    if i == n_blocks - 2:
        return upto(last - 3)
    if i - 2 > last:
        return upto(last)
    if i + 1 == last:
        return upto(i - 2)
    return upto(last) - {i - 1, i, i + 1}


@pytest.mark.parametrize("block_size,max_len", [(4, 64), (64, 2001), (128, 4000), (64, 1024)])
def test_bigbird_release_random_blocks_follow_the_release_rules(block_size, max_len):
    mixer = build("bigbird", n_heads=4, max_len=max_len, block_size=block_size, n_random=1, n_global_blocks=2)
    drawn = mixer.random_blocks
    for n_blocks in range(8, max_len // block_size + 2):
        padded = n_blocks * block_size
        span_blocks = min(padded, 1024) // block_size
        picks = drawn[n_blocks - 1, :, :n_blocks]  # [H, nb, r]
        assert picks.shape[-1] == 3  # n_random is ignored: the release's num_rand_blocks
        assert (picks[:, [0, n_blocks - 1]] == -1).all()  # global rows draw nothing
        for i in range(1, n_blocks - 1):
            candidates = candidate_blocks(i, n_blocks, span_blocks)
            for head in range(4):
                chosen = picks[head, i].tolist()
                assert len(set(chosen)) == 3 and set(chosen) <= candidates, (n_blocks, i, head, chosen, candidates)
        if n_blocks >= 12:  # heads draw their own blocks
            assert not all(torch.equal(picks[0], picks[h]) for h in range(1, 4))
    again = build("bigbird", n_heads=4, max_len=max_len, block_size=block_size, seed=None)
    assert torch.equal(again.random_blocks, drawn)  # seed None: drawn from the (fixed) global RNG


def bigbird_release_allowed(mixer, length: int) -> torch.Tensor:
    """[H, Lp, Lp] keys of each query of the padded sequence: global rows (first and last block) see all; block b
    sees blocks 0, b-1, b, b+1, nb-1 and its head's random blocks."""
    bs = mixer.block_size
    padded = length + bs - length % bs
    nb = padded // bs
    picks = mixer.random_blocks[nb - 1, :, :nb]
    allowed = torch.zeros(mixer.n_heads, nb, nb, dtype=torch.bool)
    for b in range(nb):
        if b in (0, nb - 1):
            allowed[:, b] = True
            continue
        allowed[:, b, [0, b - 1, b, b + 1, nb - 1]] = True
        for head in range(mixer.n_heads):
            allowed[head, b, picks[head, b][picks[head, b] >= 0]] = True
    return allowed.repeat_interleave(bs, dim=1).repeat_interleave(bs, dim=2)


def test_bigbird_release_dependency_per_head():
    length = 37  # block 4: padded to 40, 10 blocks, the last one partly appended zeros
    x, mask = batch(length, (length, 30))
    for head in range(H):
        mixer = build("bigbird", block_size=4)
        only_head(mixer, head)
        dep = dependency(mixer, x, mask)
        allowed = bigbird_release_allowed(mixer, length)[head, :length, :length]
        assert_real_rows(dep, allowed, mask)
        # The last block (positions 36..) is global: every query depends on position 36, and 36 on everything.
        assert dep[0, :, 36].all() and dep[0, 36].all()


@pytest.mark.parametrize("length", [37, 40])
def test_bigbird_release_equals_dense_reference_with_unmasked_zero_padding(length):
    """The release pads to a multiple of the block (a whole block at 40) with zero vectors whose mask is padded
    with -1e9, i.e. True: keys of score 0 and value 0 that take softmax mass."""
    mixer = build("bigbird", block_size=4)
    x, mask = batch(length, (length, 30))
    bs, dh = mixer.block_size, mixer.head_dim
    padded = length + bs - length % bs
    xp = torch.nn.functional.pad(x, (0, 0, 0, padded - length))
    q, k, v = (t.unflatten(-1, (H, dh)).transpose(1, 2) for t in mixer.qkv(xp).chunk(3, dim=-1))
    key_real = torch.nn.functional.pad(mask, (0, padded - length), value=True)  # appended rows count as real
    allowed = bigbird_release_allowed(mixer, length)[None] & key_real[:, None, None, :]
    scores = (q @ k.transpose(-1, -2) / dh**0.5).masked_fill(~allowed, float("-inf"))
    y = torch.softmax(scores, dim=-1) @ v  # [B, H, Lp, Dh]
    reference = mixer.out(y.transpose(1, 2).flatten(2)[:, :length])
    with torch.no_grad():
        out = mixer(x, mask)
    assert torch.allclose(out[mask], reference[mask], atol=1e-5), (out - reference)[mask].abs().max()


def test_bigbird_release_has_no_attention_dropout():
    torch.manual_seed(0)
    mixer = build_mixer("bigbird", d_model=D, n_heads=H, max_len=64, dropout=0.5, impl="release", block_size=4)
    x, mask = batch(37, (37, 30))
    assert torch.equal(mixer.train()(x, mask), mixer.eval()(x, mask))


# Reformer: shared unnormalised QK * sqrt(d), fixed rotations, cyclic look-back, output reshaped without a transpose -


def reformer_release_reference(mixer, x: torch.Tensor) -> torch.Tensor:
    """`lsh_attention_single_head` for one hash: pad with zeros by 1..10 to a multiple of 10; buckets argmax([qR; -qR])
    with R ~ N(0, 1) [Dh, 1, 5] from seed 0, the same for every head; sort by (bucket, position), 10 chunks of Lp / 10;
    keys of a chunk: itself and the chunk before, cyclically; softmax(q . k * sqrt(Dh)) over them, no mask; then the
    [B, H, Lp, Dh] output reshaped to [B, Lp, H Dh] as is and cut to L; no output projection."""
    b, length, d = x.shape
    heads, dh = mixer.n_heads, d // mixer.n_heads
    padded = length + 10 - length % 10
    xp = torch.nn.functional.pad(x, (0, 0, 0, padded - length))
    q, v = (t.unflatten(-1, (heads, dh)).transpose(1, 2) for t in mixer.qkv(xp).chunk(2, dim=-1))  # [B, H, Lp, Dh]
    rotation = torch.randn((dh, 1, 5), generator=torch.Generator().manual_seed(0))[:, 0]
    rotated = q @ rotation
    buckets = torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)  # [B, H, Lp]
    rank = (buckets * padded + torch.arange(padded)).argsort(dim=-1).argsort(dim=-1)
    chunk = rank // (padded // 10)
    same = chunk[..., :, None] == chunk[..., None, :]
    before = chunk[..., None, :] == (chunk[..., :, None] - 1) % 10
    scores = (q @ q.transpose(-1, -2) * dh**0.5).masked_fill(~(same | before), float("-inf"))
    y = torch.softmax(scores, dim=-1) @ v
    return y.reshape(b, padded, heads * dh)[:, :length]


@pytest.mark.parametrize("length", [37, 40])  # padded to 40, and by a whole chunk of 10 to 50
def test_reformer_release_equals_reference(length):
    mixer = build("reformer", d_model=16, n_heads=4)
    x, mask = batch(length, (length, 12), d_model=16)
    with torch.no_grad():
        reference = reformer_release_reference(mixer, x)
        assert torch.allclose(mixer(x, mask), reference, atol=1e-5)
        assert torch.allclose(mixer.train()(x, mask), reference, atol=1e-5)  # no dropout, the same rotation
        assert torch.allclose(mixer(x, torch.ones_like(mask)), reference, atol=1e-5)  # the mask is not used
    assert mixer.out is None and not mixer.uses_mask
    assert sum(p.numel() for p in mixer.parameters()) == 16 * 32  # query and value projections only


def test_reformer_release_rotations_are_fixed_across_layers_and_modes():
    torch.manual_seed(1)
    first = build_mixer("reformer", d_model=16, n_heads=4, max_len=64, dropout=0.1, impl="release", seed=1)
    torch.manual_seed(2)
    second = build_mixer("reformer", d_model=16, n_heads=4, max_len=64, dropout=0.1, impl="release", seed=2)
    assert torch.equal(first.rotations, second.rotations)
    second.load_state_dict(first.state_dict())
    x, mask = batch(37, (37, 12), d_model=16)
    with torch.no_grad():
        y = first.train()(x, mask)
        assert torch.equal(y, first.train()(x, mask)) and torch.equal(y, second.eval()(x, mask))


def test_reformer_release_ignores_its_options():
    x, mask = batch(37, (37, 12), d_model=16)
    default = build("reformer", d_model=16, n_heads=4)
    other = build("reformer", d_model=16, n_heads=4, n_hashes=4, n_buckets=2, bucket_size=3, seed=5, qkv_dim=8)
    other.load_state_dict(default.state_dict())
    assert torch.equal(default(x, mask), other(x, mask))


def test_reformer_release_looks_back_cyclically():
    """One head (the output reshape is then the identity): token i depends on token j iff j's sorted chunk is i's
    or the one before it, modulo 10: the first chunk depends on the last; padding counts like tokens."""
    mixer = build("reformer", d_model=D, n_heads=1)
    length = 37
    x, mask = batch(length, (length, 20))
    dep = dependency(mixer, x, mask)
    padded = 40
    with torch.no_grad():
        q, _ = mixer.heads(torch.nn.functional.pad(x, (0, 0, 0, padded - length)))
        buckets = mixer.hash(q)[:, 0, 0]  # the class's own hash [B, Lp]
    chunk = ((buckets * padded + torch.arange(padded)).argsort(dim=-1).argsort(dim=-1) // 4)[:, :length]
    expected = (chunk[:, None, :] == chunk[:, :, None]) | (chunk[:, None, :] == (chunk[:, :, None] - 1) % 10)
    assert torch.equal(dep, expected)
    first, last = chunk == 0, chunk == 9
    assert first.any(dim=1).all() and last.any(dim=1).all()
    for b in range(2):
        assert dep[b][first[b]][:, last[b]].all()
