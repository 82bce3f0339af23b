"""model.norm_type: LayerNorm, and BatchNorm with statistics over real positions (the S4 recipes' norm: batch)."""

import pytest
import torch

from lra.errors import LRAError
from lra.models.encoder import Encoder
from lra.models.norms import LayerNorm, MaskedBatchNorm, make_norm

B, L, D = 3, 11, 5


def inputs(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, L, D, generator=torch.Generator().manual_seed(seed)) * 3 + 1


def test_batch_norm_without_padding_is_torchs_batchnorm1d_over_batch_and_length():
    torch.manual_seed(0)
    ours, theirs = MaskedBatchNorm(D), torch.nn.BatchNorm1d(D)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 2), ours.bias.normal_()
        theirs.weight.copy_(ours.weight), theirs.bias.copy_(ours.bias)
    full = torch.ones(B, L, dtype=torch.bool)
    for seed in range(3):  # training steps: batch statistics, running estimates updated
        x = inputs(seed)
        torch.testing.assert_close(ours(x, full), theirs(x.transpose(1, 2)).transpose(1, 2), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.running_mean, theirs.running_mean)
    torch.testing.assert_close(ours.running_var, theirs.running_var)
    ours.eval(), theirs.eval()
    x = inputs(7)
    torch.testing.assert_close(ours(x, full), theirs(x.transpose(1, 2)).transpose(1, 2), rtol=1e-5, atol=1e-5)


def test_batch_norm_statistics_ignore_padding():
    norm = MaskedBatchNorm(D).train()
    x = inputs()
    lengths = torch.tensor([L, 6, 2])
    mask = torch.arange(L)[None] < lengths[:, None]
    garbage = torch.where(mask[..., None], x, torch.full_like(x, 1e3))
    y = norm(x, mask)
    torch.testing.assert_close(norm(garbage, mask)[mask], y[mask])
    real = x[mask]  # [n_real, D]
    torch.testing.assert_close(y[mask], (real - real.mean(0)) / torch.sqrt(real.var(0, unbiased=False) + 1e-5))
    # Unmasked, the pads enter the statistics: the check above can fail.
    assert not torch.allclose(norm(garbage, torch.ones_like(mask))[mask], y[mask])


def test_layer_norm_ignores_the_mask_and_bad_names_are_one_line():
    norm = make_norm("layer", D)
    assert isinstance(norm, LayerNorm) and isinstance(make_norm("batch", D), MaskedBatchNorm)
    x = inputs()
    torch.testing.assert_close(norm(x, torch.zeros(B, L, dtype=torch.bool)), torch.nn.functional.layer_norm(x, (D,)))
    with pytest.raises(LRAError, match="model.norm_type='group'"):
        make_norm("group", D)


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("mixer", ["s4d", "lru"])
def test_batch_norm_encoder_output_is_unchanged_by_appended_padding(norm, mixer):
    """In training mode (batch statistics), with the S4 block shape: pads reach no real output through the norms."""
    def encoder(max_len: int) -> Encoder:
        torch.manual_seed(0)
        return Encoder([mixer, mixer], vocab_size=9, max_len=max_len, d_model=8, n_heads=1, d_ff=0, dropout=0.0,
                       attn_dropout=0.0, norm=norm, norm_type="batch", pool="mean", pos="none",
                       mixer_options={mixer: {"d_state": 4}}).double().train()

    ids = torch.randint(1, 9, (B, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.arange(12)[None] < torch.tensor([[12], [9], [4]])
    short = encoder(12)(ids * mask, mask)
    extra = torch.randint(1, 9, (B, 7))
    padded_ids = torch.cat([ids * mask, extra], 1)  # pad ids are arbitrary: the mask alone marks them
    padded_mask = torch.cat([mask, torch.zeros(B, 7, dtype=torch.bool)], 1)
    torch.testing.assert_close(encoder(19)(padded_ids, padded_mask), short, rtol=1e-9, atol=1e-9)
