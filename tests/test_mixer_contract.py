"""The mixer contract, checked for every registered mixer: shape, dtype, gradients, padding invariance."""

import pytest
import torch

from lra.errors import LRAError
from lra.models.mixers import MIXERS, HeadedMixer, Mixer, build_mixer
from lra.models.mixers.registry import RELEASE

D, H, L, N_REAL = 32, 4, 64, 40


def make(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_mixer(name, d_model=D, n_heads=H, max_len=L, dropout=0.0).eval()


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, L, D, generator=g)
    mask = torch.zeros(2, L, dtype=torch.bool)
    mask[0, :N_REAL] = True
    mask[1, : N_REAL // 2] = True
    return x, mask


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_shape_dtype_and_gradients(name):
    mixer = make(name).train()
    x, mask = inputs()
    x.requires_grad_(True)
    y = mixer(x, mask)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for p in mixer.parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_padding_content_does_not_reach_real_positions(name):
    """What sits in padded positions must not change real outputs, unless the method mixes pads by design."""
    mixer = make(name)
    x, mask = inputs()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) * 3
    x_other = torch.where(mask[..., None], x, noise)
    with torch.no_grad():
        y, y_other = mixer(x, mask), mixer(x_other, mask)
    same = torch.allclose(y[mask], y_other[mask], atol=1e-5, rtol=1e-4)
    assert same == mixer.uses_mask, "uses_mask=False mixers must really mix pads, others must not"


# Mixers without heads (FNet, Linear, the state-space models) have no q/k/v; Luna has two attentions.
ATTENTION_LIKE = sorted(n for n, cls in MIXERS.items() if cls.uses_heads and n != "luna")


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_every_mixer_declares_the_contract(name):
    """The encoder reads these declared attributes, never probes for them."""
    cls = MIXERS[name]
    assert issubclass(cls, Mixer)
    assert {type(cls.uses_mask), type(cls.uses_heads), type(cls.uses_state)} == {bool}
    assert make(name).resizer(1, 4, True) is None or name == "fourier_transformer"


@pytest.mark.parametrize("name", ATTENTION_LIKE)
def test_attention_like_mixers_share_one_headed_projection(name):
    mixer = make(name)
    assert isinstance(mixer, HeadedMixer)
    assert mixer.qkv.in_features == D and mixer.qkv.bias is None and mixer.out.out_features == D


@pytest.mark.parametrize("name", ["attention", "performer", "local", "reformer"])
def test_head_divisibility_is_one_message(name):
    with pytest.raises(LRAError, match=r"^model.d_model=30 is not divisible by model.n_heads=4, which \w+ needs"):
        build_mixer(name, d_model=30, n_heads=4, max_len=L, dropout=0.0)


@pytest.mark.parametrize("name", sorted(RELEASE))
def test_release_classes_keep_the_contract(name):
    """Shape, gradients, and pads: a release class that declares uses_mask must not see them, others must."""
    torch.manual_seed(0)
    mixer = build_mixer(name, d_model=D, n_heads=H, max_len=L, dropout=0.0, impl="release")
    assert type(mixer) is RELEASE[name] and mixer.impl == "release"
    x, mask = inputs()
    x.requires_grad_(True)
    y = mixer.train()(x, mask)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    mixer.eval()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        y, y_other = mixer(x, mask), mixer(torch.where(mask[..., None], x, noise), mask)
    assert torch.allclose(y[mask], y_other[mask], atol=1e-5, rtol=1e-4) == mixer.uses_mask


@pytest.mark.parametrize("name", sorted(set(MIXERS) - set(RELEASE)))
def test_mixers_without_a_release_variant_behave_the_same_under_both(name):
    x, mask = inputs()
    outputs = []
    for impl in ("paper", "release"):
        torch.manual_seed(0)
        mixer = build_mixer(name, d_model=D, n_heads=H, max_len=L, dropout=0.0, impl=impl).eval()
        outputs.append(mixer(x, mask))
    if name == "attention":  # the release's Transformer: the same but for the bias-free output projection
        assert mixer.out.bias is None
    else:
        torch.testing.assert_close(outputs[0], outputs[1])
