"""impl=release of local, sinkhorn and longformer: what the LRA release code computed, pinned without trained weights.

Every expected pattern and reference here is written from the release's maths (lra_benchmarks/models/local,
sinkhorn_transformer, longformer), not from the mixers' code, and each test also checks that the paper class does
not pass it, so the test can fail.
"""

from __future__ import annotations

import pytest
import torch

from lra.models.mixers import build_mixer
from lra.models.mixers.base import merge_heads, split_heads

D, H, MAX_LEN = 16, 2, 64
NEG = -1e10  # the release's additive bias on a masked score
TOL = 1e-6  # a Jacobian block above this counts as a dependency (structural zeros are exact)


def build(name: str, impl: str = "release", **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_mixer(name, d_model=D, n_heads=H, max_len=MAX_LEN, dropout=0.0, impl=impl, **options).eval()


def row_mask(length: int, n_real: int) -> torch.Tensor:
    return torch.arange(length) < n_real


def inputs(length: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, length, D, generator=torch.Generator().manual_seed(seed))


def dependency(mixer, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[L, L]: out[p] depends on in[q], from the autograd Jacobian of one sequence (each row's block of it seen
    through a random direction of out[p], which is generically nonzero wherever the block is)."""
    x = x.clone().requires_grad_(True)
    y = mixer(x, mask[None])[0]
    directions = torch.randn(y.shape, generator=torch.Generator().manual_seed(7))
    rows = [torch.autograd.grad(y[p] @ directions[p], x, retain_graph=True)[0][0] for p in range(y.shape[0])]
    return torch.stack(rows).abs().amax(dim=-1) > TOL


def softmax_dependency(length: int, slots: list[list[int]], allowed: list[bool]) -> tuple[set[int], bool]:
    """Input positions one softmax row depends on. `slots`: the input positions each key slot is made from (empty
    for a zero slot); `allowed`: the release's mask per slot. A row with no allowed slot is uniform over all of them
    (-1e10 + score rounds to -1e10), and its gradient still reaches the scores; the query's own position counts
    when at least two slots carry weight and one of them is not zero."""
    live = [s for s, a in zip(slots, allowed, strict=True) if a] or slots
    deps = {q for s in live for q in s if q < length}
    return deps, len(live) >= 2 and bool(deps)


def heads(mixer, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    q, k, v = (split_heads(t, H) for t in mixer.qkv(x).chunk(3, dim=-1))
    return q * (D // H) ** -0.5, k, v


def project(mixer, y: torch.Tensor) -> torch.Tensor:
    return mixer.out(merge_heads(y))


# Local: strided groups, the mask cut into contiguous chunks, a whole extra block -------------------------------------


def local_pattern(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Release: pad with size - L % size zero slots whose mask is True; n = L' / size groups; position p (group
    p % n, index p // n) attends to the group's slots t (positions t * n + g), masked by the *contiguous* chunk
    g of the mask: allowed iff m[g * size + p // n] and m[g * size + t]."""
    length = mask.numel()
    padded = length + size - length % size
    n = padded // size
    m = torch.cat([mask, torch.ones(padded - length, dtype=torch.bool)]).tolist()
    dep = torch.zeros(length, length, dtype=torch.bool)
    for p in range(length):
        g, s = p % n, p // n
        slots = [[t * n + g] for t in range(size)]
        allowed = [m[g * size + s] and m[g * size + t] for t in range(size)]
        deps, via_query = softmax_dependency(length, slots, allowed)
        dep[p, list(deps)] = True
        dep[p, p] |= via_query
    return dep


LOCAL_CASES = [(10, 7, 4), (8, 5, 4), (8, 8, 4), (12, 9, 3)]  # shorter than a block: see the dense test


@pytest.mark.parametrize("length,n_real,size", LOCAL_CASES)
def test_local_dependency_pattern_is_the_release_strided_groups(length, n_real, size):
    mask, x = row_mask(length, n_real), inputs(length)
    expected = local_pattern(mask, size)
    assert torch.equal(dependency(build("local", block_size=size), x, mask), expected)
    assert not torch.equal(dependency(build("local", "paper", block_size=size), x, mask), expected)


def local_reference(mixer, x: torch.Tensor, mask: torch.Tensor, size: int) -> torch.Tensor:
    """Dense [L', L'] version of the release: a softmax over the group's slots with -1e10 added where masked."""
    length = x.shape[1]
    padded = length + size - length % size
    n = padded // size
    x = torch.cat([x, x.new_zeros(x.shape[0], padded - length, D)], dim=1)
    m = torch.cat([mask, mask.new_ones(mask.shape[0], padded - length)], dim=1)
    pos = torch.arange(padded)
    row, col = pos[:, None], pos[None, :]
    same_group = row % n == col % n
    chunk_q = m[:, (row % n) * size + row // n]  # [B, L', 1]
    chunk_k = m[:, (row % n) * size + col // n]  # [B, L', L']
    allowed = same_group & chunk_q & chunk_k
    q, k, v = heads(mixer, x)
    scores = q @ k.transpose(-1, -2) + torch.where(allowed, 0.0, NEG)[:, None]
    scores = scores.masked_fill(~same_group, float("-inf"))
    return project(mixer, torch.softmax(scores, dim=-1) @ v)[:, :length]


@pytest.mark.parametrize("length,size", [(10, 4), (8, 4), (3, 4)])
def test_local_matches_dense_release_reference(length, size):
    x = torch.randn(2, length, D, generator=torch.Generator().manual_seed(1))
    mask = torch.stack([row_mask(length, length - 1), row_mask(length, 2)])
    mixer = build("local", block_size=size)
    with torch.no_grad():
        y, reference = mixer(x, mask), local_reference(mixer, x, mask, size)
        assert torch.allclose(y, reference, atol=1e-5), (y - reference).abs().max()
        assert not torch.allclose(build("local", "paper", block_size=size)(x, mask), reference, atol=1e-3)


# Sinkhorn: strided groups + one "sorted" block that is the same sum for every group ----------------------------------


def sinkhorn_pattern(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Release (L a multiple of size, n = L / size groups): the local part as Local's without extra slots, plus a
    separate softmax over `size` sorted slots; slot t is the sum of positions t * n .. t * n + n - 1 (the einsum
    sums groups and permutation separately), allowed for query index s iff some chunk c has m[c * size + s] and
    m[c * size + t]."""
    length = mask.numel()
    n = length // size
    m = mask.tolist()
    dep = torch.zeros(length, length, dtype=torch.bool)
    for p in range(length):
        g, s = p % n, p // n
        local = softmax_dependency(
            length, [[t * n + g] for t in range(size)], [m[g * size + s] and m[g * size + t] for t in range(size)]
        )
        ranked = softmax_dependency(
            length,
            [list(range(t * n, t * n + n)) for t in range(size)],
            [any(m[c * size + s] and m[c * size + t] for c in range(n)) for t in range(size)],
        )
        for deps, via_query in (local, ranked):
            dep[p, list(deps)] = True
            dep[p, p] |= via_query
    return dep


@pytest.mark.parametrize("length,n_real,size", [(12, 2, 4), (12, 4, 6), (8, 1, 4), (12, 7, 4)])  # the last: dense
def test_sinkhorn_dependency_pattern_is_the_release_one(length, n_real, size):
    mask, x = row_mask(length, n_real), inputs(length)
    expected = sinkhorn_pattern(mask, size)
    assert torch.equal(dependency(build("sinkhorn", block_size=size), x, mask), expected)
    assert not torch.equal(dependency(build("sinkhorn", "paper", block_size=size), x, mask), expected)


def test_sinkhorn_every_sorted_block_is_the_sum_of_all_blocks():
    mixer = build("sinkhorn", block_size=4)
    g = torch.Generator().manual_seed(2)
    blocks = torch.randn(2, H, 5, 4, D // H, generator=g)  # [B, H, groups, block, Dh]
    perm = mixer.permutation(blocks)
    assert perm.shape == (2, H, 5, 5) and torch.allclose(perm.sum(-1), torch.ones(()), atol=1e-6)
    ranked = mixer.sorted_blocks(blocks, perm)
    total = blocks.sum(dim=2, keepdim=True).expand_as(blocks)
    assert torch.allclose(ranked, total, atol=1e-5)
    # A real permutation (what a sort is meant to give) would not sum the blocks.
    shift = torch.eye(5).roll(1, dims=1).expand(2, H, 5, 5)
    assert not torch.allclose(mixer.sorted_blocks(blocks, shift), torch.einsum("bhij,bhjsd->bhisd", shift, blocks))


@pytest.mark.parametrize("impl", ["release", "paper"])
def test_sinkhorn_sort_net_has_no_effect_only_in_the_release(impl):
    mixer = build("sinkhorn", impl, block_size=4)
    x = torch.randn(2, 16, D, generator=torch.Generator().manual_seed(3))
    mask = torch.stack([row_mask(16, 16), row_mask(16, 9)])
    with torch.no_grad():
        y = mixer(x, mask)
        for p in mixer.sort_net.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(4)) * 3)
        unchanged = torch.allclose(mixer(x, mask), y, atol=1e-5)
    assert unchanged == (impl == "release")


def sinkhorn_reference(mixer, x: torch.Tensor, mask: torch.Tensor, size: int) -> torch.Tensor:
    """Dense release: own strided group (chunk mask, -1e10) + sorted slots (chunk sums), two separate softmaxes."""
    length = x.shape[1]
    n = length // size
    pos = torch.arange(length)
    row, col = pos[:, None], pos[None, :]
    same_group = row % n == col % n
    allowed = same_group & mask[:, (row % n) * size + row // n] & mask[:, (row % n) * size + col // n]
    q, k, v = heads(mixer, x)
    scores = q @ k.transpose(-1, -2) + torch.where(allowed, 0.0, NEG)[:, None]
    y = torch.softmax(scores.masked_fill(~same_group, float("-inf")), dim=-1) @ v
    k_sum, v_sum = (t.unflatten(2, (size, n)).sum(dim=3) for t in (k, v))  # slot t: positions t*n .. t*n+n-1
    chunks = mask.unflatten(1, (n, size))  # [B, chunk, index]
    slot_ok = (chunks[:, :, :, None] & chunks[:, :, None, :]).any(dim=1)  # [B, s, t]
    slot_ok = slot_ok[:, row[:, 0] // n]  # [B, L, size]: query p has index p // n
    sorted_scores = q @ k_sum.transpose(-1, -2) + torch.where(slot_ok, 0.0, NEG)[:, None]
    y = y + torch.softmax(sorted_scores, dim=-1) @ v_sum
    return project(mixer, y)


def test_sinkhorn_matches_dense_release_reference():
    length, size = 20, 4
    x = torch.randn(2, length, D, generator=torch.Generator().manual_seed(5))
    mask = torch.stack([row_mask(length, 17), row_mask(length, 3)])
    mixer = build("sinkhorn", block_size=size)
    with torch.no_grad():
        y, reference = mixer(x, mask), sinkhorn_reference(mixer, x, mask, size)
        assert torch.allclose(y, reference, atol=1e-4), (y - reference).abs().max()
        assert not torch.allclose(build("sinkhorn", "paper", block_size=size)(x, mask), reference, atol=1e-2)


# Longformer: window only, asymmetric band, padded queries uniform over everything ------------------------------------


def longformer_allowed(mask: torch.Tensor, window: int) -> torch.Tensor:
    """Release: right = window // 2 keys to the right, window - right to the left including self; padding masked
    for queries and keys (no global token: global_mask is None)."""
    length = mask.shape[-1]
    right = window // 2
    left = window - right
    offset = torch.arange(length)[None, :] - torch.arange(length)[:, None]  # key - query
    band = (offset > -left) & (offset <= right)
    return band & mask[..., :, None] & mask[..., None, :]


@pytest.mark.parametrize("window,n_real", [(4, 9), (5, 9), (512, 9), (1, 12), (6, 3)])
def test_longformer_dependency_pattern_is_the_release_band(window, n_real):
    length = 12
    mask, x = row_mask(length, n_real), inputs(length)
    allowed = longformer_allowed(mask, window)
    expected = torch.zeros(length, length, dtype=torch.bool)
    for p in range(length):
        deps, via_query = softmax_dependency(length, [[q] for q in range(length)], allowed[p].tolist())
        expected[p, list(deps)] = True
        expected[p, p] |= via_query
    options = {"window": window, "n_global": 1, "separate_global": True}  # the conf's; the release has no global
    assert torch.equal(dependency(build("longformer", **options), x, mask), expected)
    assert not torch.equal(dependency(build("longformer", "paper", **options), x, mask), expected)


def test_longformer_values_and_gradients_match_dense_release_reference():
    """Dense [L, L] softmax with -1e10 added where masked, as released: also pins the padded rows' gradient."""
    length, window = 14, 6
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, length, D, generator=g)
    mask = torch.stack([row_mask(length, 10), row_mask(length, 4)])
    cotangent = torch.randn(2, length, D, generator=g)
    results = []
    for impl in ("release", "paper"):
        mixer = build("longformer", impl, window=window, n_global=0)
        for reference in (False, True):
            xr = x.clone().requires_grad_(True)
            if reference:
                q, k, v = heads(mixer, xr)
                scores = q @ k.transpose(-1, -2) + torch.where(longformer_allowed(mask, window), 0.0, NEG)[:, None]
                y = project(mixer, torch.softmax(scores, dim=-1) @ v)
            else:
                y = mixer(xr, mask)
            (y * cotangent).sum().backward()
            results.append((y.detach(), xr.grad))
    (y, gy), (ref, gref), (y_paper, g_paper), (ref_p, gref_p) = results
    assert torch.allclose(y, ref, atol=1e-5) and torch.allclose(gy, gref, atol=1e-4)
    assert not (torch.allclose(y_paper, ref_p, atol=1e-3) and torch.allclose(g_paper, gref_p, atol=1e-3))


def test_longformer_release_ignores_the_global_options():
    release = build("longformer", window=8, n_global=2, separate_global=True)
    assert release.n_global == 0 and release.qkv_global is None
    assert build("longformer", "paper", window=8, n_global=2).qkv_global is not None


# The contract, under impl=release ------------------------------------------------------------------------------------

CONF = {  # conf/model/<name>.yaml's options, unchanged
    "local": {"block_size": 50},
    "sinkhorn": {"block_size": 50, "sinkhorn_iters": 5, "temperature": 0.75},
    "longformer": {"window": 512, "n_global": 1, "separate_global": True},
}


@pytest.mark.parametrize("name", sorted(CONF))
@pytest.mark.parametrize("length", [64, 100, 7])
def test_release_builds_and_trains_on_a_padded_batch(name, length):
    torch.manual_seed(0)
    mixer = build_mixer(name, d_model=32, n_heads=4, max_len=128, dropout=0.1, impl="release", **CONF[name]).train()
    assert type(mixer).__name__.endswith("Release") and mixer.out.bias is None
    x = torch.randn(2, length, 32, requires_grad=True)
    mask = torch.stack([row_mask(length, length), row_mask(length, max(1, length // 3))])
    y = mixer(x, mask)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in mixer.parameters())
