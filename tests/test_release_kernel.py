"""impl=release of Performer, Linformer, Synthesizer and Linear Transformer: each against the release's maths,
written out here on the mixer's own projections (google-research/long-range-arena, lra_benchmarks/models/)."""

import math

import pytest
import torch
import torch.nn.functional as F

from lra.errors import LRAError
from lra.models.mixers import build_mixer
from lra.models.mixers.base import merge_heads, split_heads
from lra.models.mixers.performer import query_seed, release_features

D, H, L = 32, 4, 16
DH = D // H
N_REAL = (16, 9)  # row 0 all real, row 1 with 7 pads


def make(name: str, impl: str = "release", max_len: int = L, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_mixer(name, d_model=D, n_heads=H, max_len=max_len, dropout=0.0, impl=impl, **options).eval()


def inputs(seed: int = 0, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(2, L, D, generator=torch.Generator().manual_seed(seed)) * scale
    mask = torch.arange(L)[None, :] < torch.tensor(N_REAL)[:, None]
    return x, mask


def qkv(mixer, x):
    return [split_heads(t, H) for t in mixer.qkv(x).chunk(3, dim=-1)]


def with_other_pads(x, mask, seed=1):
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)) * 3
    return torch.where(mask[..., None], x, noise)


def assert_close(y, ref, atol=1e-5):
    err = (y - ref).abs().max().item()
    assert err < atol, f"max error {err:.2e}, tolerance {atol:.0e}"


def explicit_linear(phi_q, phi_k, v, normaliser_fix):
    """out_i = sum_j (phi_q_i . phi_k_j) v_j / sum_j (phi_q_i . phi_k_j), over every j, with an explicit [L, L]."""
    scores = phi_q @ phi_k.transpose(-1, -2)  # [B, H, L, L]
    return (scores @ v) / normaliser_fix(scores.sum(dim=-1, keepdim=True))


def test_performer_relu_kernel_is_the_release_default_over_all_positions():
    mixer = make("performer")
    x, mask = inputs()
    with torch.no_grad():
        y = mixer(x, mask)
        q, k, v = qkv(mixer, x)
        phi = lambda t: torch.relu(t) + 1e-3  # noqa: E731 -- raw q, k: no projection, no d^-1/4
        ref = mixer.out(merge_heads(explicit_linear(phi(q), phi(k), v, lambda r: r)))
    assert_close(y, ref)
    assert not mixer.uses_mask and mixer.out.bias is None
    with torch.no_grad():
        y_other = mixer(with_other_pads(x, mask), mask)
    assert torch.equal(y_other[0], y[0])  # row 0 has no pads; examples stay independent (no seed, no batch sum)
    assert not torch.allclose(y_other[1, :9], y[1, :9], atol=1e-4)  # row 1's pads reach its real tokens


def favor_release(q, k, v, w):
    """The release's FAVOR+ (nonnegative_softmax_kernel_feature_creator), written out."""
    c = q.shape[-1] ** -0.25
    m = w.shape[0]

    def features(t, dims):
        wt = (t * c) @ w.T
        diag = (t * c).square().sum(-1, keepdim=True) / 2
        return (torch.exp(wt - diag - wt.amax(dim=dims, keepdim=True)) + 1e-6) / math.sqrt(m)

    return explicit_linear(features(q, (-1,)), features(k, (-2, -1)), v, lambda r: r + 2e-6 * (r.abs() <= 1e-6))


def seed_of(q):
    s = math.ceil((q.sum() * 1e7).item())
    return max(min(s, 2**31 - 1), -(2**31))


def test_performer_listops_softmax_kernel_redrawn_from_the_batch_queries_in_eval():
    mixer = make("performer", kernel="softmax", num_features=2, redraw_every=1)
    x, mask = inputs(scale=0.05)  # |sum(q)| small enough that ceil(sum * 1e7) does not saturate int32
    x_other = x.clone()
    x_other[1] = torch.randn(L, D, generator=torch.Generator().manual_seed(5)) * 0.05
    with torch.no_grad():
        y, y_again, y_other = mixer(x, mask), mixer(x, mask), mixer(x_other, mask)
        q, k, v = qkv(mixer, x)
    assert torch.equal(y, y_again)  # the seed is a function of the batch: same batch, same features
    assert not torch.allclose(y[0], y_other[0], atol=1e-6)  # row 0 unchanged, but its batch changed the features
    w = release_features(2, DH, seed_of(q))
    assert w.shape == (2, DH)
    with torch.no_grad():
        assert_close(y, mixer.out(merge_heads(favor_release(q, k, v, w))))


def test_performer_query_seed_saturates_and_draw_has_raw_qr_signs():
    q = torch.full((2, 1, 3, 4), 1e-7)  # sum 2.4e-6 -> ceil(24.0..) = 25 (float32)
    assert query_seed(q) == math.ceil((q.sum() * 1e7).item())
    assert query_seed(q * 1e9) == 2**31 - 1 and query_seed(-q * 1e9) == -(2**31)
    for seed in range(12):
        w = release_features(3, DH, seed)
        unit = w / w.norm(dim=-1, keepdim=True)
        assert torch.allclose(unit @ unit.T, torch.eye(3), atol=1e-5)
        assert w[0, 0] < 0  # LAPACK Householder QR, no sign correction: column 0 of Q starts negative


def test_performer_release_options_are_checked():
    with pytest.raises(LRAError, match="model.kernel"):
        make("performer", kernel="cos")
    with pytest.raises(LRAError, match="model.redraw_every=1000"):
        make("performer", kernel="softmax", redraw_every=1000)
    fixed = make("performer", kernel="softmax", num_features=2, redraw_every=0)
    assert torch.equal(fixed.projection, release_features(2, DH, 0))  # PRNGKey(0), the same in every layer


def test_linformer_k16_unmasked_projection():
    mixer = make("linformer", max_len=L + 4, proj_len=256)
    assert mixer.proj.shape == (16, L + 4)  # k = 16 whatever proj_len, not capped at max_len
    bound = math.sqrt(6 / (L + 4 + 16))
    assert mixer.proj.abs().max() <= bound and mixer.proj.abs().max() > 0.8 * bound  # xavier-uniform
    x, mask = inputs()
    with torch.no_grad():
        y = mixer(x, mask)
        q, k, v = qkv(mixer, x)
        e = mixer.proj[:, :L]  # the first L columns, pads included
        scores = q @ (e @ k).transpose(-1, -2) / math.sqrt(DH)  # [B, H, L, 16], no mask
        ref = mixer.out(merge_heads(scores.softmax(-1) @ (e @ v)))
        y_other = mixer(with_other_pads(x, mask), mask)
    assert_close(y, ref)
    assert not mixer.uses_mask and not torch.allclose(y_other[1, :9], y[1, :9], atol=1e-4)


def test_synthesizer_random_plus_dot_product_logits():
    mixer = make("synthesizer", max_len=L + 4, variant="dense", rank=8, learned=False)  # options ignored
    assert mixer.random.shape == (H, L + 4, L + 4) and mixer.random.requires_grad
    assert mixer.random.abs().max() <= math.sqrt(3 / (H * (L + 4)))
    with torch.no_grad():
        mixer.random.normal_()  # trained values, large enough to matter against q k^T
    x, mask = inputs()
    with torch.no_grad():
        y = mixer(x, mask)
        q, k, v = qkv(mixer, x)
        logits = q @ k.transpose(-1, -2) / math.sqrt(DH) + mixer.random[:, :L, :L]
        both = mask[:, None, :, None] & mask[:, None, None, :]
        weights = (logits + torch.where(both, 0.0, -1e10)).softmax(-1)
        ref = mixer.out(merge_heads(weights @ v))
        y_other = mixer(with_other_pads(x, mask), mask)
    assert_close(y, ref)
    assert torch.allclose(y_other[mask], y[mask], atol=1e-5)  # padding masked, as released
    with torch.no_grad():  # a padded query's row is all -1e10: uniform over every value, pads included
        assert_close(y[1, 12], mixer.out(merge_heads(v.mean(dim=-2, keepdim=True)))[1, 0])


def test_linear_transformer_unmasked_elu_features():
    mixer = make("linear_transformer")
    x, mask = inputs()
    with torch.no_grad():
        y = mixer(x, mask)
        q, k, v = qkv(mixer, x)
        phi = lambda t: F.elu(t) + 1  # noqa: E731
        ref = mixer.out(merge_heads(explicit_linear(phi(q), phi(k), v, lambda r: r + 1e-6)))
        y_other = mixer(with_other_pads(x, mask), mask)
    assert_close(y, ref)
    assert not mixer.uses_mask and not torch.allclose(y_other[1, :9], y[1, :9], atol=1e-4)


@pytest.mark.parametrize(
    "name, options",
    [
        ("performer", {}),
        ("performer", {"kernel": "softmax", "num_features": 2, "redraw_every": 1}),
        ("linformer", {}),
        ("synthesizer", {}),
        ("linear_transformer", {}),
    ],
)
def test_release_build_gives_finite_output_and_gradients(name, options):
    mixer = make(name, **options).train()
    x, mask = inputs()
    mask[1, 3:] = False  # a short padded row
    x.requires_grad_(True)
    y = mixer(x, mask)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for p in mixer.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
