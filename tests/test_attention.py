"""Exact attention honours the key padding mask."""

import torch

from lra.models.mixers import build_mixer


def test_appended_padding_does_not_change_real_outputs():
    torch.manual_seed(0)
    mixer = build_mixer("attention", d_model=32, n_heads=4, max_len=64, dropout=0.0).eval()
    x = torch.randn(2, 20, 32)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 12:] = False
    padded = torch.cat([x, torch.randn(2, 30, 32)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(2, 30, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        short, long = mixer(x, mask), mixer(padded, padded_mask)
    assert torch.allclose(short[mask], long[:, :20][mask], atol=1e-6)


def test_all_padding_row_is_finite():
    mixer = build_mixer("attention", d_model=16, n_heads=2, max_len=8, dropout=0.0)
    y = mixer(torch.randn(2, 8, 16), torch.zeros(2, 8, dtype=torch.bool))
    assert torch.isfinite(y).all()


def weights_through_identity_values(p: float, seed: int = 0):
    """With v = identity (one value per key position), attention returns its (dropped-out) weights themselves."""
    from lra.models.mixers.attention import blocked_dropout_attention, key_padding_mask

    g = torch.Generator().manual_seed(seed)
    L = 600  # more than two query blocks
    q, k = torch.randn(1, 1, L, 8, generator=g), torch.randn(1, 1, L, 8, generator=g)
    v = torch.eye(L)[None, None]
    mask = torch.ones(1, L, dtype=torch.bool)
    mask[0, 500:] = False
    attn_mask = key_padding_mask(mask)
    exact = torch.softmax((q @ k.transpose(-1, -2) / 8**0.5).masked_fill(~attn_mask, float("-inf")), dim=-1)
    torch.manual_seed(seed)
    return blocked_dropout_attention(q, k, v, attn_mask, p), exact


def test_cpu_blocked_dropout_path_is_exact_attention_without_dropout():
    dropped, exact = weights_through_identity_values(0.0)
    torch.testing.assert_close(dropped, exact)


def test_cpu_blocked_dropout_drops_each_weight_independently_and_rescales():
    p = 0.3
    dropped, exact = weights_through_identity_values(p)
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], exact[kept] / (1 - p))  # survivors are rescaled by 1 / (1 - p)
    real = exact > 0
    assert abs((~kept[real]).float().mean().item() - p) < 0.01  # each weight dropped with probability p
    assert not kept[~real].any()  # padded keys stay at zero weight


def test_training_on_cpu_with_attention_dropout_takes_the_blocked_path(monkeypatch):
    import lra.models.mixers.attention as attention

    calls = []
    original = attention.blocked_dropout_attention
    monkeypatch.setattr(attention, "blocked_dropout_attention", lambda *a: calls.append(1) or original(*a))
    mixer = build_mixer("attention", d_model=16, n_heads=2, max_len=8, dropout=0.1)
    x, mask = torch.randn(2, 8, 16), torch.ones(2, 8, dtype=torch.bool)
    mixer.train()(x, mask)
    assert calls == [1]
    mixer.eval()(x, mask)  # eval: SDPA's fused kernel, no dropout
    assert calls == [1]
    assert attention.kernel_for(torch.device("cpu"), 0.1, True) == "cpu_blocked_dropout"
    assert attention.kernel_for(torch.device("cuda"), 0.1, True) == "sdpa"


def test_a_batch_without_padding_reaches_sdpa_without_a_mask(monkeypatch):
    """FlashAttention needs attn_mask=None; whether a batch is padded is decided on the host (to_batch)."""
    import numpy as np

    import lra.models.mixers.attention as attention
    from lra.data.base import to_batch
    from lra.models import build_model
    from lra.run.config import compose_train

    cfg = compose_train(["model=transformer", "model.n_layers=2", "model.d_model=16", "model.n_heads=2",
                         "model.d_ff=16", "task.max_len=12", "model.attn_dropout=0.0", "model.dropout=0.0"])
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.task).eval()
    masks = []
    sdpa = attention.F.scaled_dot_product_attention
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention",
                        lambda *a, attn_mask=None, **k: masks.append(attn_mask) or sdpa(*a, attn_mask=attn_mask, **k))
    ids = np.random.default_rng(0).integers(1, 15, (3, 12))
    full = to_batch({"input_ids": ids, "length": np.array([12, 12, 12]), "label": np.array([0, 1, 2])})
    short = to_batch({"input_ids": ids, "length": np.array([12, 7, 12]), "label": np.array([0, 1, 2])})
    assert full["padded"] is False and short["padded"] is True
    with torch.no_grad():
        unmasked = model(full)
        assert masks == [None, None]  # both layers
        model(short)
        assert all(m is not None for m in masks[2:]) and len(masks) == 4
        # Same numbers as with the (all-True) mask: only the kernel choice changes.
        assert torch.allclose(unmasked, model({**full, "padded": True}), atol=1e-6)
