"""model=fourier_transformer model.impl=release against an independent float64 transcription of layer 0 of the
authors' LRA code, written here from its description (docs/reference.md#fourier-transformer), not from our class:
LayerNorm, CLS aside, orthonormal DCT-II as an explicit cosine matrix, the first ceil(0.2 T) coefficients, the
inverse at that length, CLS back, biased q/k/v softmax attention with no mask, output Linear, the shortened
normalised input as the residual, then the pre-LN feed-forward."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lra.models.encoder import Encoder
from lra.models.mixers.fourier_transformer import CodeShorten

D, H, VOCAB = 8, 2, 20


def encoder(max_len: int, n_layers: int = 2, pool: str = "cls") -> Encoder:
    torch.manual_seed(0)
    enc = Encoder(
        ["fourier_transformer"] * n_layers, vocab_size=VOCAB, max_len=max_len, d_model=D, n_heads=H, d_ff=16,
        dropout=0.0, attn_dropout=0.0, pool=pool, pos="learned", impl="release", cls_token="shift",
    )
    return enc.double().eval()


def inputs(max_len: int, lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB - 1, (len(lengths), max_len), generator=g)
    mask = torch.arange(max_len)[None] < torch.tensor(lengths)[:, None]
    return ids.masked_fill(~mask, 0), mask


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II: C[k, j] = s_k cos(pi k (2j + 1) / 2n), s_0 = sqrt(1/n), s_k = sqrt(2/n)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None]
    c = torch.cos(math.pi * k * (2 * j + 1) / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c


def transcribed_shorten(y: torch.Tensor, keep: float = 0.2) -> torch.Tensor:
    """[B, T, D] normalised input -> [B, 1 + ceil(keep T), D]."""
    t = y.shape[1]
    body = y[:, 1:]
    m = math.ceil(keep * t)
    coeffs = torch.einsum("kj,bjd->bkd", dct_matrix(t - 1), body)[:, :m]
    short = torch.einsum("kj,bkd->bjd", dct_matrix(m), coeffs)  # C^T: the orthonormal inverse at length m
    return torch.cat([y[:, :1], short], dim=1)


def transcribed_layer0(x: torch.Tensor, block) -> torch.Tensor:
    """Their layer 0 on the embedded input x [B, T, D], with the weights of our `block` (eval: no dropout)."""
    n1, n2 = block.norm1, block.norm2
    short = transcribed_shorten(F.layer_norm(x, (D,), n1.weight, n1.bias, n1.eps))
    w, b = block.mixer.qkv.weight, block.mixer.qkv.bias
    q, k, v = (
        (short @ w[i * D:(i + 1) * D].T + b[i * D:(i + 1) * D]).view(x.shape[0], -1, H, D // H).transpose(1, 2)
        for i in range(3)
    )
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // H), dim=-1)  # no mask
    attn = (weights @ v).transpose(1, 2).reshape(x.shape[0], -1, D) @ block.mixer.out.weight.T + block.mixer.out.bias
    h = attn + short
    lin1, lin2 = block.ffn[0], block.ffn[3]
    hidden = F.gelu(F.layer_norm(h, (D,), n2.weight, n2.bias, n2.eps) @ lin1.weight.T + lin1.bias)
    return h + hidden @ lin2.weight.T + lin2.bias


@pytest.mark.parametrize("length, short", [(2048, 411), (1024, 206)])
def test_layer0_equals_the_transcription(length, short):
    enc = encoder(length)
    ids, mask = inputs(length, [length, length // 3])
    with torch.no_grad():
        x, emb_mask = enc.embed(ids, mask)
        ours, new_mask = enc.blocks[0](x, emb_mask, {}, enc.resizers["0"])
        theirs = transcribed_layer0(x, enc.blocks[0])
    assert ours.shape == (2, short, D) and new_mask.shape == (2, short) and new_mask.all()
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)


def test_residual_is_the_shortened_normalised_input():
    enc = encoder(64)
    block = enc.blocks[0]
    with torch.no_grad():
        for linear in (block.mixer.out, block.ffn[3]):  # both residual branches output zero
            linear.weight.zero_()
            linear.bias.zero_()
        x, mask = enc.embed(*inputs(64, [64, 10]))
        out, _ = block(x, mask, {}, enc.resizers["0"])
        normed = block.norm1(x)
    torch.testing.assert_close(out, transcribed_shorten(normed), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out[:, 1:], transcribed_shorten(x)[:, 1:]), "not the raw embedding stream"


def test_constant_input_comes_back_scaled_by_sqrt_n_over_m():
    t, c = 101, 0.7  # ceil(0.2 * 101) = 21 counts the CLS: ceil(0.2 * 100) would be 20
    x = torch.full((1, t, D), c, dtype=torch.float64)
    x[:, 0] = -3.0  # CLS: kept aside, unchanged
    y, mask = CodeShorten(0.2, cls=True)(x, torch.zeros(1, t, dtype=torch.bool))
    m = math.ceil(0.2 * t)
    assert y.shape == (1, 1 + m, D) and mask.all()
    torch.testing.assert_close(y[:, 1:], torch.full((1, m, D), c * math.sqrt((t - 1) / m), dtype=torch.float64))
    assert torch.equal(y[:, 0], x[:, 0])


def test_no_output_depends_on_the_mask_and_pads_are_tokens():
    """After the shortening no mask is used anywhere (later layers, final norm, CLS pooling): the model's output is
    a function of the ids alone; and pads are not zeroed, so their embedding reaches the output."""
    enc = encoder(128, n_layers=3)
    ids, mask = inputs(128, [128, 30, 5])
    with torch.no_grad():
        out = enc(ids, mask)
        torch.testing.assert_close(enc(ids, torch.ones_like(mask)), out, rtol=0, atol=0)
        torch.testing.assert_close(enc(ids, ~mask), out, rtol=0, atol=0)
        other_pads = torch.where(mask, ids, torch.full_like(ids, 3))
        moved = (enc(other_pads, mask) - out).abs().amax(-1)
    assert moved[0] == 0 and (moved[1:] > 1e-6).all(), "pad content reaches the output of padded examples"
    # Every position of layer 1 on depends on every input position (the DCT mixes them all).
    x = enc.embed(ids[:1], mask[:1])[0].detach().requires_grad_(True)
    short, _ = enc.blocks[0](x, mask[:1], {}, enc.resizers["0"])
    short[0, 5].sum().backward()
    assert (x.grad[0].abs().sum(-1) > 0).all()


def test_cls_is_the_last_id_shifted_in_and_the_last_token_dropped():
    enc = encoder(32)
    ids, mask = inputs(32, [32, 32])
    with torch.no_grad():
        x, new_mask = enc.embed(ids, mask)
        expected = enc.embed.tokens(torch.cat([torch.full((2, 1), VOCAB - 1), ids[:, :-1]], 1)) + enc.embed.pos[:, :32]
        torch.testing.assert_close(x, expected)
        assert x.shape == (2, 32, D) and new_mask.all()
        last_changed = ids.clone()
        last_changed[:, -1] = 7 if ids[0, -1] != 7 else 8
        torch.testing.assert_close(enc(last_changed, mask), enc(ids, mask), rtol=0, atol=0)
        first_changed = ids.clone()
        first_changed[:, 0] = 7 if ids[0, 0] != 7 else 8
        assert not torch.allclose(enc(first_changed, mask), enc(ids, mask))
