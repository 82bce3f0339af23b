"""The pooled forward's last block gives position 0 alone (Encoder.reads_first_only): the same outputs and gradients
as the whole last block, for every kind of mixer, and never where it would not be exact."""

import pytest
import torch

from lra.models.encoder import Encoder
from lra.models.mixers import build_mixer
from lra.models.mixers.fourier import FourierMixer, fourier_mix

V, L, D = 20, 33, 16

CASES = [
    (["fourier"] * 2, {"norm": "post"}),
    (["fourier"] * 2, {"norm": "post", "block": "fnet"}),
    (["fourier", "attention"], {"norm": "post", "block": "fnet"}),
    (["attention"] * 2, {}),
    (["attention"] * 2, {"impl": "release", "pos": "rotary"}),
    (["attention"] * 2, {"zero_is_pad": True, "impl": "release"}),  # CLS takes the first input's mask, as released
    (["fourier_transformer"] * 2, {"impl": "release"}),  # its own forward: the whole layer, then its first row
    (["luna"] * 2, {}),  # a stateful mixer: whole output, then its first row
    (["nystromformer"] * 2, {"pool": "first"}),
    (["s4d"] * 2, {"pos": "none"}),
]


def outputs_and_grads(encoder: Encoder, ids: torch.Tensor, mask: torch.Tensor, first: bool):
    pooled = encoder.pooling(*encoder.features(ids, mask, first=first))
    return pooled, torch.autograd.grad(pooled.square().sum(), list(encoder.parameters()))


@pytest.mark.parametrize("mixers, options", CASES, ids=lambda c: c if isinstance(c, str) else None)
def test_position_zero_alone_equals_the_whole_last_block(mixers, options):
    torch.manual_seed(0)
    # float64: the two ways are equal as computations; in float32 different kernels round apart (1e-3 in a gradient).
    encoder = Encoder(mixers, V, L, D, 2, 24, 0.0, 0.0, **{"pool": "cls", "pos": "learned", **options}).double()
    assert encoder.reads_first_only
    ids, mask = torch.randint(0, V, (3, L)), torch.ones(3, L, dtype=torch.bool)
    mask[1, 20:] = False
    whole, whole_grads = outputs_and_grads(encoder, ids, mask, first=False)
    alone, alone_grads = outputs_and_grads(encoder, ids, mask, first=True)
    torch.testing.assert_close(alone, whole, atol=1e-10, rtol=1e-9)
    for a, w in zip(alone_grads, whole_grads, strict=True):
        torch.testing.assert_close(a, w, atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(encoder(ids, mask), whole, atol=1e-10, rtol=1e-9)  # forward takes the short way


@pytest.mark.parametrize("options", [{"norm_type": "batch"}, {"pool": "mean"}])
def test_not_taken_where_it_would_change_the_result(options):
    encoder = Encoder(["attention"] * 2, V, L, D, 2, 24, 0.0, 0.0, **{"pool": "cls", **options})
    assert not encoder.reads_first_only  # batch statistics span positions; mean pooling reads them all


def test_fourier_first_row_is_row_zero_of_the_mix():
    x = torch.randn(2, 37, 12, dtype=torch.float64)
    mixer = FourierMixer(12, 1, 37, 0.0)
    torch.testing.assert_close(mixer.first_row(x, None), fourier_mix(x)[:, :1])
    torch.testing.assert_close(mixer.first_row(x, None), torch.fft.fftn(x, dim=(1, 2)).real[:, :1])


@pytest.mark.parametrize("impl", ["paper", "release"])
@pytest.mark.parametrize("window", [None, 3])
def test_attention_scores_one_query_for_position_zero(impl, window):
    """A padded position 0 (the release's uniform row), padded keys, a locality band: row 0 of the whole layer."""
    torch.manual_seed(0)
    mixer = build_mixer("attention", D, 2, L, dropout=0.0, impl=impl)
    mixer.restrict(window)
    x, mask = torch.randn(3, L, D), torch.ones(3, L, dtype=torch.bool)
    mask[1, 20:] = False
    mask[2, :5] = False
    assert mixer.first_row(x, mask).shape == (3, 1, D)
    torch.testing.assert_close(mixer.first_row(x, mask), mixer(x, mask)[:, :1])


def test_the_last_attention_layer_scores_one_query(monkeypatch):
    encoder = Encoder(["attention"] * 2, V, L, D, 2, 24, 0.0, 0.0, pool="cls")
    queries = []
    for block in encoder.blocks:
        def counted(q, *rest, core=block.mixer.core):
            queries.append(q.shape[2])
            return core(q, *rest)
        monkeypatch.setattr(block.mixer, "core", counted)
    encoder(torch.randint(0, V, (2, L)), torch.ones(2, L, dtype=torch.bool))
    assert queries == [L + 1, 1]  # CLS and L tokens, then position 0 alone
