"""The last differences the numerical audit of impl=release found (docs/reference.md#audit-of-implrelease), closed:
padded query rows, the flax-default Dense layers, one-epoch warm-ups, the 0-based rsqrt step."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lra.models.classifier import Classifier
from lra.models.encoder import Encoder
from lra.models.init import initialise
from lra.models.mixers import build_mixer
from lra.run.config import compose_train
from lra.run.schedules import rsqrt

D, H, L = 16, 2, 120  # L > 2 x 50: Sparse's release pattern has several blocks


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, L, D, generator=g)
    mask = torch.rand(2, L, generator=g) > 0.4  # padded positions scattered, as black pixels are
    mask[0, 0] = False  # a padded first position (Image's CLS takes the first pixel's mask)
    return x, mask


def values(mixer, x: torch.Tensor) -> torch.Tensor:
    """[B, L, H, Dh] -> the mean over all L positions of v, through the output projection: [B, D]."""
    v = mixer.qkv(x).chunk(3, dim=-1)[2]
    return mixer.out(v.mean(1))


@pytest.mark.parametrize("name", ["attention", "sparse"])
def test_padded_query_rows_are_the_mean_of_all_values_under_release(name):
    torch.manual_seed(0)
    mixer = build_mixer(name, d_model=D, n_heads=H, max_len=L, dropout=0.0, impl="release").eval()
    x, mask = inputs()
    with torch.no_grad():
        y = mixer(x, mask)
        mixer.impl = "paper"  # the same weights and code without the release's query mask
        unmasked_rows = mixer(x, mask)
        mixer.impl = "release"
    expected = values(mixer, x)[:, None].expand_as(y)
    torch.testing.assert_close(y[~mask], expected[~mask], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y[mask], unmasked_rows[mask], rtol=0, atol=0)  # real rows unchanged
    assert not torch.allclose(unmasked_rows[~mask], expected[~mask], atol=1e-3)


@pytest.mark.parametrize("name", ["attention", "sparse"])
def test_paper_classes_keep_padded_rows_as_they_were(name):
    torch.manual_seed(0)
    mixer = build_mixer(name, d_model=D, n_heads=H, max_len=L, dropout=0.0).eval()
    x, mask = inputs()
    with torch.no_grad():
        y = mixer(x, mask)
    assert not torch.allclose(y[~mask], values(mixer, x)[:, None].expand_as(y)[~mask], atol=1e-3)
    if name == "attention":  # a padded query attends to the real keys, as every query does
        q, k, v = (t.view(2, L, H, D // H).transpose(1, 2) for t in mixer.qkv(x).chunk(3, dim=-1))
        logits = (q @ k.transpose(-1, -2) / math.sqrt(D // H)).masked_fill(~mask[:, None, None], -torch.inf)
        expected = mixer.out((logits.softmax(-1) @ v).transpose(1, 2).reshape(2, L, D))
        torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)


def test_padded_rows_take_attention_dropout_like_any_row():
    torch.manual_seed(0)
    mixer = build_mixer("attention", d_model=D, n_heads=H, max_len=L, dropout=0.5, impl="release").train()
    x, mask = inputs()
    with torch.no_grad():
        y = mixer(x, mask)
    spread = (y[~mask] - values(mixer, x)[:, None].expand_as(y)[~mask]).abs().amax()
    assert spread > 1e-3  # each padded row its own dropout draw over the uniform weights, not the plain mean


def test_image_cls_with_a_black_first_pixel_is_a_uniform_row():
    torch.manual_seed(0)
    enc = Encoder(["attention"], vocab_size=256, max_len=L, d_model=D, n_heads=H, d_ff=32, dropout=0.0,
                  attn_dropout=0.0, pool="cls", pos="learned", impl="release", zero_is_pad=True).eval()
    mixer = enc.blocks[0].mixer
    seen = {}
    mixer.register_forward_hook(lambda m, args, out: seen.update(x=args[0], mask=args[1], y=out))
    ids = torch.randint(1, 256, (2, L))
    ids[0, 0] = 0  # black top-left pixel in the first image only
    with torch.no_grad():
        enc.features(ids, torch.ones_like(ids, dtype=torch.bool))  # the whole layer (tests/test_first_only.py: row 0)
        mean = values(mixer, seen["x"])
    assert seen["mask"][:, 0].tolist() == [False, True]
    torch.testing.assert_close(seen["y"][0, 0], mean[0], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(seen["y"][1, 0], mean[1], atol=1e-3)


def test_release_init_gives_the_heads_and_sinkhorn_logits_flax_dense_defaults():
    torch.manual_seed(0)
    enc = Encoder(["sinkhorn"], vocab_size=10, max_len=100, d_model=256, n_heads=2, d_ff=256, dropout=0.0,
                  attn_dropout=0.0, pool="mean_all", impl="release")
    model = initialise(Classifier(enc, 256, 256, 3, dual=False, interaction="paper"), "release")
    sort_net = enc.blocks[0].mixer.sort_net
    for layer in [*model.head[::2], sort_net]:
        fan_in = layer.weight.shape[1]
        std = 1 / math.sqrt(fan_in)  # lecun-normal: variance 1 / fan_in after the truncation at 2 std
        assert layer.weight.std().item() == pytest.approx(std, rel=0.1)
        assert layer.weight.abs().max() <= 2 * std / 0.87962566103423978 + 1e-6
        assert layer.bias is None or torch.count_nonzero(layer.bias) == 0
    # Every other Dense stays xavier-uniform: its bound is reached.
    ffn = enc.blocks[0].ffn[0]
    bound = math.sqrt(6.0 / (ffn.in_features + ffn.out_features))
    assert 0.8 * bound < ffn.weight.abs().max() <= bound
    torch_init = initialise(Classifier(enc, 256, 256, 3, dual=False, interaction="paper"), "torch")
    assert any(isinstance(m, nn.Linear) and m.bias is not None and m.bias.abs().max() > 0 for m in torch_init.head)


def test_one_epoch_warmups_are_the_releases_floor_division():
    assert compose_train(["experiment=lra/image"]).optim.warmup_steps == 45000 // 256 == 175
    assert compose_train(["experiment=lra/pathfinder"]).optim.warmup_steps == 160000 // 512 == 312


def test_rsqrt_step_is_zero_based():
    assert rsqrt(0, 1000) == 0.0  # lr 0 at the first update, as the release
    assert rsqrt(500, 1000) == pytest.approx(0.5 / math.sqrt(1000))
    assert rsqrt(1000, 1000) == pytest.approx(1 / math.sqrt(1000))
    assert rsqrt(4000, 1000) == pytest.approx(1 / math.sqrt(4000))
