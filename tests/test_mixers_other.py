"""FNet-Hybrid, Linear mixing, Synthesizer, Luna and the Fourier Transformer: what the contract test cannot see."""

import math

import pytest
import torch
import torch.nn.functional as F

from lra.errors import LRAError
from lra.models import build_model
from lra.models.dct import dct, dct_resample, idct
from lra.models.lra_block import Block
from lra.models.mixers import build_mixer
from lra.models.mixers.attention import Attention
from lra.models.mixers.fourier import FourierMixer
from lra.models.mixers.fourier_transformer import SpectralShorten
from lra.models.mixers.luna import CARRY
from lra.run.config import compose_train
from tests.helpers import TINY_MODEL

D, H, MAX_LEN = 32, 4, 37  # MAX_LEN tokens (+ CLS = 38): odd lengths exercise the ceil
QUIET = ["model.dropout=0.0", "model.attn_dropout=0.0"]


def built(model: str, *overrides: str) -> torch.nn.Module:
    """A tiny model from the real configs (ListOps shapes, max_len 37), in eval mode."""
    cfg = compose_train([f"model={model}", *TINY_MODEL, *QUIET, f"task.max_len={MAX_LEN}", *overrides])
    torch.manual_seed(0)
    return build_model(cfg.model, cfg.task).eval()


def batch(n_real: list[int], seed: int = 0, pad_seed: int | None = None) -> dict[str, torch.Tensor]:
    """Token ids with the given real lengths; pads are 0, or random tokens from `pad_seed`."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 17, (len(n_real), MAX_LEN), generator=g)
    mask = torch.arange(MAX_LEN)[None] < torch.tensor(n_real)[:, None]
    pads = torch.zeros_like(ids)
    if pad_seed is not None:
        pads = torch.randint(0, 17, ids.shape, generator=torch.Generator().manual_seed(pad_seed))
    return {"input_ids": torch.where(mask, ids, pads), "mask": mask, "label": torch.arange(len(n_real)) % 10}


def padded_inputs(length: int = 24, n_real: tuple[int, int] = (20, 9)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, length, D, generator=g)
    mask = torch.arange(length)[None] < torch.tensor(n_real)[:, None]
    return x, mask


def with_other_pads(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) * 3
    return torch.where(mask[..., None], x, noise)


# FNet-Hybrid


def test_fnet_hybrid_is_fourier_except_attention_in_the_last_two_layers():
    model = built("fnet_hybrid", "model.n_layers=5")
    blocks = model.encoder.blocks
    assert [type(b.mixer) for b in blocks] == [FourierMixer] * 3 + [Attention] * 2
    assert not any(b.pre for b in blocks), "FNet-Hybrid keeps FNet's post-LN blocks"


# Linear mixing


def test_linear_is_the_two_dense_matrices_sliced_to_the_length():
    torch.manual_seed(0)
    mixer = build_mixer("linear", d_model=D, n_heads=H, max_len=64, dropout=0.0)
    x, mask = padded_inputs()
    n = x.shape[1]
    expected = torch.einsum("ls,bsd,de->ble", mixer.seq[:n, :n].double(), x.double(), mixer.hidden.double())
    assert torch.allclose(mixer(x, mask).double(), expected, atol=1e-4)


def test_linear_mixes_padding_by_design_and_zero_pad_removes_it():
    """The documented exception to the mask contract: pads reach real positions unless the block zeroes them."""
    torch.manual_seed(0)
    mixer = build_mixer("linear", d_model=D, n_heads=H, max_len=64, dropout=0.0)
    assert mixer.uses_mask is False
    x, mask = padded_inputs()
    x_other = with_other_pads(x, mask)
    with torch.no_grad():
        assert not torch.allclose(mixer(x, mask)[mask], mixer(x_other, mask)[mask], atol=1e-3)
        block = Block(mixer, D, 64, 0.0, "post", zero_pad=True).eval()
        assert torch.allclose(block(x, mask)[0][mask], block(x_other, mask)[0][mask], atol=1e-5)


# Synthesizer

SYNTH_VARIANTS = [{"variant": "dense"}, {"variant": "random"}, {"variant": "random", "learned": False, "rank": 2}]


@pytest.mark.parametrize("options", SYNTH_VARIANTS, ids=["dense", "random", "random-fixed"])
def test_synthesizer_ignores_padding_content_and_appended_padding(options):
    torch.manual_seed(0)
    mixer = build_mixer("synthesizer", d_model=D, n_heads=H, max_len=64, dropout=0.0, **options).eval()
    x, mask = padded_inputs()
    longer = torch.cat([with_other_pads(x, mask), torch.randn(2, 16, D)], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(2, 16, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        y, y_other, y_longer = mixer(x, mask), mixer(with_other_pads(x, mask), mask), mixer(longer, longer_mask)
    assert torch.allclose(y[mask], y_other[mask], atol=1e-5)
    assert torch.allclose(y[mask], y_longer[:, : x.shape[1]][mask], atol=1e-5)


def test_synthesizer_variants_differ_as_documented():
    torch.manual_seed(0)
    dense = build_mixer("synthesizer", d_model=D, n_heads=H, max_len=64, dropout=0.0)
    fixed = build_mixer("synthesizer", d_model=D, n_heads=H, max_len=64, dropout=0.0, variant="random", learned=False)
    x, _ = padded_inputs()
    assert dense.logits(x).shape == (2, H, 24, 24)
    assert not torch.allclose(dense.logits(x)[0], dense.logits(x)[1]), "dense logits come from each token"
    assert fixed.logits(x).shape == (1, H, 24, 24)
    assert torch.linalg.matrix_rank(fixed.logits(x)[0, 0]) == 8, "factorized random logits have the chosen rank"
    assert "factors" in dict(fixed.named_buffers()) and "factors" not in dict(fixed.named_parameters())
    with pytest.raises(LRAError, match="model.variant='mixed'"):
        build_mixer("synthesizer", d_model=D, n_heads=H, max_len=64, dropout=0.0, variant="mixed")


# Luna


def test_luna_carries_its_packed_sequence_across_layers():
    model = built("luna", "model.n_layers=3")
    encoder, data = model.encoder, batch([30, 12])
    with torch.no_grad():
        x, mask = encoder.embed(data["input_ids"], data["mask"])
        state, carried, inputs = {}, [], []
        for block in encoder.blocks:
            inputs.append(x)
            x, _ = block(x, mask, state)
            carried.append(state[CARRY].clone())
        assert carried[0].shape == (2, 16, D)
        assert not torch.allclose(carried[0], carried[1]) and not torch.allclose(carried[1], carried[2])
        # The second layer really reads the carry: with another P it computes something else.
        carried_in, _ = encoder.blocks[1](inputs[1], mask, {CARRY: carried[0]})
        assert not torch.allclose(carried_in, encoder.blocks[1](inputs[1], mask, {CARRY: carried[1]})[0])
    # Only the first layer has its own P: a later one's would never get a gradient (DDP refuses that).
    assert encoder.blocks[0].mixer.p is not None
    assert encoder.blocks[1].mixer.p is None and encoder.blocks[2].mixer.p is None
    model.train()
    F.cross_entropy(model(data), data["label"]).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_luna_model_ignores_padding_content_and_trains():
    model = built("luna")
    with torch.no_grad():
        clean, noisy = model(batch([30, 12])), model(batch([30, 12], pad_seed=5))
    assert torch.allclose(clean, noisy, atol=1e-5)

    data = batch([37, 30, 21, 12, 5, 33, 8, 16])
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(data), data["label"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses  # a fixed batch of 8: memorised fast


# Fourier Transformer: the DCT


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II as an explicit float64 matrix: C[k, t] = s_k cos(pi k (2t + 1) / 2n)."""
    k, t = torch.arange(n, dtype=torch.float64)[:, None], torch.arange(n, dtype=torch.float64)[None]
    scale = torch.full((n, 1), math.sqrt(2.0 / n), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / n)
    return scale * torch.cos(math.pi * k * (2 * t + 1) / (2 * n))


@pytest.mark.parametrize("n", [1, 2, 7, 16, 37])
def test_dct_matches_the_float64_matrix_formula(n):
    x = torch.randn(3, n, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    matrix = dct_matrix(n)
    assert torch.allclose(matrix @ matrix.T, torch.eye(n, dtype=torch.float64), atol=1e-12), "orthonormal"
    expected = torch.einsum("kt,btd->bkd", matrix, x)
    assert torch.allclose(dct(x, dim=1), expected, atol=1e-12)
    assert torch.allclose(idct(expected, dim=1), x, atol=1e-12)
    assert torch.allclose(dct(x.float(), dim=1).double(), expected, atol=1e-5), "float32 path"


def test_dct_round_trip_and_full_resample_are_exact():
    x = torch.randn(2, 37, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(idct(dct(x, dim=1), dim=1), x, atol=1e-5)
    assert torch.allclose(dct_resample(x, 37, dim=1), x, atol=1e-5)


def test_resampling_keeps_constants_and_low_frequencies():
    """A smooth sequence survives shortening: a sampled cosine of the lowest frequency stays that cosine."""
    def cosine(n: int) -> torch.Tensor:
        return torch.cos(math.pi * (2 * torch.arange(n, dtype=torch.float64) + 1) / (2 * n))

    assert torch.allclose(dct_resample(torch.full((40,), 2.5), 13), torch.full((13,), 2.5), atol=1e-5)
    assert torch.allclose(dct_resample(cosine(40), 13), cosine(13), atol=1e-12)


# Fourier Transformer: the encoder


def record_blocks(model: torch.nn.Module) -> list[tuple[int, torch.Tensor]]:
    """Hook every mixer: the sequence length and the mask it is given, per call (forward, or first_row in the last
    layer of a CLS-pooled model)."""
    seen: list[tuple[int, torch.Tensor]] = []
    inside: list[bool] = []

    def record(x: torch.Tensor, mask: torch.Tensor) -> None:
        if not inside:  # a first_row that calls forward is one call
            seen.append((x.shape[1], mask.clone()))

    for block in model.encoder.blocks:
        mixer = block.mixer
        mixer.register_forward_hook(lambda mod, args, out: record(args[0], args[1]))

        def first_row(x, mask, *rest, original=mixer.first_row, **state):
            record(x, mask)
            inside.append(True)
            try:
                return original(x, mask, *rest, **state)
            finally:
                inside.pop()

        mixer.first_row = first_row
    return seen


def shortened(n: int, keep: float, times: int) -> int:
    for _ in range(times):
        n = math.ceil(keep * n)
    return n


@pytest.mark.parametrize("keep", [0.5, 0.3])
def test_shortened_length_and_mask_follow_ceil(keep):
    model = built("fourier_transformer", "model.n_layers=4", f"model.keep={keep}", "model.pool=cls")
    seen = record_blocks(model)
    n_real = [37, 21, 6]
    with torch.no_grad():
        model(batch(n_real))
    lengths = [length for length, _ in seen]
    full = MAX_LEN + 1
    once = 1 + math.ceil(keep * (full - 1))
    assert lengths == [full, once, 1 + math.ceil(keep * (once - 1)), 1 + math.ceil(keep * (once - 1))]
    for layer, times in enumerate([0, 1, 2, 2]):
        mask = seen[layer][1]
        assert mask.sum(1).tolist() == [1 + shortened(n, keep, times) for n in n_real]
        assert mask[:, 0].all() and (mask[:, :-1] >= mask[:, 1:]).all(), "CLS, then the real prefix"


def test_shortening_layers_are_configurable_and_checked():
    model = built("fourier_transformer", "model.n_layers=4", "model.shorten_layers=[-1]", "model.pool=mean")
    seen = record_blocks(model)
    with torch.no_grad():
        model(batch([37, 10]))
    assert [length for length, _ in seen] == [MAX_LEN] * 3 + [math.ceil(0.5 * MAX_LEN)], "no CLS: the whole sequence"
    # The default adapts to the depth: layers 1 and 2 where they exist.
    assert list(built("fourier_transformer", "model.n_layers=2").encoder.resizers) == ["1"]
    assert list(built("fourier_transformer", "model.n_layers=1").encoder.resizers) == []
    assert list(built("fourier_transformer", "model.n_layers=4").encoder.resizers) == ["1", "2"]
    with pytest.raises(LRAError, match="model.shorten_layers has 4"):
        built("fourier_transformer", "model.n_layers=4", "model.shorten_layers=[4]")
    with pytest.raises(LRAError, match="model.keep=0"):
        built("fourier_transformer", "model.keep=0")


def test_keeping_every_coefficient_equals_the_unshortened_model():
    full = built("fourier_transformer", "model.n_layers=3", "model.keep=1.0")
    plain = built("fourier_transformer", "model.n_layers=3", "model.shorten_layers=[]")
    plain.load_state_dict(full.state_dict())
    assert len(full.encoder.resizers) == 2 and len(plain.encoder.resizers) == 0
    data = batch([37, 20, 3])
    with torch.no_grad():
        assert torch.allclose(full(data), plain(data), atol=1e-5)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_fourier_transformer_end_to_end_ignores_padding_content(pool):
    model = built("fourier_transformer", "model.n_layers=4", f"model.pool={pool}")
    with torch.no_grad():
        clean, noisy = model(batch([37, 20, 3])), model(batch([37, 20, 3], pad_seed=3))
    assert clean.shape == (3, 10) and torch.isfinite(clean).all()
    assert torch.allclose(clean, noisy, atol=1e-5)


def test_mean_pooling_reads_only_the_shrunken_mask():
    model = built("fourier_transformer", "model.n_layers=3", "model.pool=mean")
    n_real = [37, 20, 3]
    kept = torch.tensor([shortened(n, 0.5, 2) for n in n_real])

    def spoil_beyond_mask(module, args, out):
        beyond = torch.arange(out.shape[1])[None] >= kept[:, None]
        return out.masked_fill(beyond[..., None], 1e3)

    with torch.no_grad():
        pooled = model.encoder(batch(n_real)["input_ids"], batch(n_real)["mask"])
        model.encoder.final_norm.register_forward_hook(spoil_beyond_mask)
        spoiled = model.encoder(batch(n_real)["input_ids"], batch(n_real)["mask"])
    assert torch.allclose(pooled, spoiled, atol=1e-6)


def test_spectral_filter_zeroes_pads_before_the_transform():
    x, mask = padded_inputs(length=25, n_real=(25, 9))
    shorten = SpectralShorten(keep=0.5, cls=True)
    y, new_mask = shorten(x, mask)
    y_other, _ = shorten(with_other_pads(x, mask), mask)
    assert y.shape == (2, 13, D) and new_mask.sum(1).tolist() == [13, 5]
    assert torch.equal(y[:, 0], x[:, 0]), "CLS kept aside"
    assert torch.allclose(y, y_other, atol=1e-6)
