"""The local convolution mixer (model=conv): what the contract test cannot see."""

import pytest
import torch

from lra.errors import LRAError
from lra.models.mixers import build_mixer

D, L = 8, 24


def conv(kernel: int = 5) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_mixer("conv", d_model=D, n_heads=1, max_len=L, dropout=0.0, kernel=kernel).eval()


@pytest.mark.parametrize("kernel", [1, 5, 7])
def test_output_depends_only_on_positions_within_half_the_kernel(kernel):
    """d y_i / d x_j != 0 exactly for |i - j| <= kernel // 2, both directions, all positions real."""
    mixer = conv(kernel)
    x = torch.randn(1, L, D, requires_grad=True)
    mask = torch.ones(1, L, dtype=torch.bool)
    reach = torch.zeros(L, L, dtype=torch.bool)
    for i in range(L):
        (grad,) = torch.autograd.grad(mixer(x, mask)[0, i].sum(), x)
        reach[i] = grad[0].abs().sum(-1) > 0
    offsets = torch.arange(L)[None] - torch.arange(L)[:, None]
    assert torch.equal(reach, offsets.abs() <= kernel // 2)


def test_pads_never_reach_real_positions():
    mixer = conv(5)
    x = torch.randn(2, L, D)
    mask = torch.arange(L)[None] < torch.tensor([[L - 3], [7]])
    noise = torch.where(mask[..., None], x, torch.randn(x.shape) * 5)
    with torch.no_grad():
        y, y_noise = mixer(x, mask), mixer(noise, mask)
    assert torch.allclose(y[mask], y_noise[mask], atol=1e-6)
    # the last real token sees zeros after it, as at the sequence's end: the same as an unpadded sequence
    with torch.no_grad():
        alone = mixer(x[1:, :7], torch.ones(1, 7, dtype=torch.bool))
    assert torch.allclose(y[1, :7], alone[0], atol=1e-6)


@pytest.mark.parametrize("kernel", [0, 4])
def test_kernel_must_be_odd_and_positive(kernel):
    with pytest.raises(LRAError, match=rf"^model.kernel={kernel} must be an odd positive integer"):
        conv(kernel)
