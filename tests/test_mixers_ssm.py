"""S4D and LRU against their recurrences (float64), padding in both directions, and the SSM optimiser group."""

import math

import pytest
import torch

from lra.errors import LRAError
from lra.models.encoder import Encoder
from lra.models.mixers import build_mixer
from lra.models.mixers.lru import parallel_scan
from lra.models.mixers.s4d import init_a
from lra.run.config import compose_train
from lra.run.optim import OptimSettings
from lra.run.task import LRATask
from lra.run.train import run

D, L = 6, 37  # an odd length, not a power of two: the FFT padding and the scan's last step are exercised


def make(name: str, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    mixer = build_mixer(name, d_model=D, n_heads=1, max_len=L, dropout=0.0, **options).double().eval()
    if name == "s4d":  # larger steps and a random B than at init, so that every term of the recurrence matters
        with torch.no_grad():
            mixer.log_dt.uniform_(math.log(0.05), math.log(0.5))
            mixer.b.normal_()
    return mixer


def s4d_recurrence(mixer, u: torch.Tensor) -> torch.Tensor:
    """The ZOH recurrence x_k = exp(dt A) x_{k-1} + (exp(dt A) - 1)/A B u_k, y = 2 Re(C x) per direction, + D u."""
    a = torch.complex(-torch.exp(mixer.a_log_real), mixer.a_imag)  # [2, H, N]
    b, c = torch.view_as_complex(mixer.b), torch.view_as_complex(mixer.c)
    dta = torch.exp(mixer.log_dt)[..., None] * a
    decay, gain = torch.exp(dta), torch.expm1(dta) / a * b
    out = mixer.d * u
    for direction, seq in ((0, u), (1, u.flip(1))):
        x = torch.zeros(u.shape[0], D, a.shape[-1], dtype=torch.complex128)
        ys = []
        for k in range(seq.shape[1]):
            x = decay[direction] * x + gain[direction] * seq[:, k, :, None]
            ys.append(2 * (c[direction] * x).sum(-1).real)
        y = torch.stack(ys, 1)
        out = out + (y if direction == 0 else y.flip(1))
    return out


@pytest.mark.parametrize("ssm_init", ["lin", "inv"])
def test_s4d_fft_convolution_equals_the_recurrence_both_directions(ssm_init):
    mixer = make("s4d", d_state=8, ssm_init=ssm_init)
    u = torch.randn(2, L, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(mixer.ssm(u), s4d_recurrence(mixer, u), rtol=1e-9, atol=1e-9)
        # Each direction alone is needed: zeroing the backward kernel's C must change the output.
        mixer.c[1].zero_()
        assert not torch.allclose(mixer.ssm(u), s4d_recurrence(make("s4d", d_state=8, ssm_init=ssm_init), u))


def test_s4d_kernel_at_l_is_the_truncation_of_the_kernel_at_2l():
    mixer = make("s4d", d_state=16)
    with torch.no_grad():
        short, long = mixer.kernel(L, torch.float64), mixer.kernel(2 * L, torch.float64)
    assert short.shape == (2, D, L)
    torch.testing.assert_close(short, long[..., :L], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("length", [1, 2, 16, 37, 101])  # perfect squares and not: the block split and its tail
def test_s4d_blockwise_kernel_equals_the_direct_vandermonde_product(length):
    mixer = make("s4d", d_state=8)
    a = torch.complex(-torch.exp(mixer.a_log_real), mixer.a_imag)  # [2, H, N]
    bc = torch.view_as_complex(mixer.b) * torch.view_as_complex(mixer.c)
    dta = torch.exp(mixer.log_dt)[..., None] * a
    vandermonde = torch.exp(dta[..., None] * torch.arange(length, dtype=torch.float64))  # [2, H, N, L]
    direct = 2 * torch.einsum("dhn,dhnl->dhl", bc * torch.expm1(dta) / a, vandermonde).real
    with torch.no_grad():
        torch.testing.assert_close(mixer.kernel(length, torch.float64), direct, rtol=1e-10, atol=1e-10)


def test_s4d_inits():
    real, imag = init_a(1, 8, "lin")
    torch.testing.assert_close(imag[0], math.pi * torch.arange(4, dtype=torch.float64))
    real, imag = init_a(1, 8, "inv")
    torch.testing.assert_close(imag[0, 0], torch.tensor(8 / math.pi * 7, dtype=torch.float64))
    assert (real == -0.5).all()
    mixer = build_mixer("s4d", d_model=D, n_heads=1, max_len=L, dropout=0.0)
    dt = torch.exp(mixer.log_dt)
    assert dt.min() >= 1e-3 and dt.max() <= 1e-1 and dt.std() > 0
    with pytest.raises(LRAError, match="model.ssm_init"):
        build_mixer("s4d", d_model=D, n_heads=1, max_len=L, dropout=0.0, ssm_init="diag")


def sequential_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    x, out = torch.zeros_like(b[:, 0]), []
    for k in range(b.shape[1]):
        x = a[k] * x + b[:, k]
        out.append(x)
    return torch.stack(out, 1)


@pytest.mark.parametrize("length", [1, 2, 5, 16, 17, 37, 256, 300])  # one block, blocks with a tail, two levels
def test_parallel_scan_equals_the_sequential_loop(length):
    g = torch.Generator().manual_seed(length)
    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, dtype=torch.float64, generator=g)

    a = torch.complex(torch.rand(length, 4, dtype=torch.float64, generator=g), draw(length, 4) * 0.5)  # time-varying
    b = torch.complex(draw(3, length, 4), draw(3, length, 4))
    expected = sequential_scan(a, b)
    torch.testing.assert_close(parallel_scan(a, b), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(parallel_scan(a, b, chunk=3), expected, rtol=1e-10, atol=1e-10)  # deep recursion


def test_lru_equals_the_recurrence_both_directions():
    mixer = make("lru", d_state=5, r_min=0.5, r_max=0.99)
    u = torch.randn(2, L, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    lam = mixer.lam(torch.float64)
    expected = mixer.d * u
    with torch.no_grad():
        for direction, seq in ((0, u), (1, u.flip(1))):
            b = torch.complex(mixer.b[direction, 0], mixer.b[direction, 1])  # [N, H]
            c = torch.complex(mixer.c[direction, 0], mixer.c[direction, 1])  # [H, N]
            gamma = torch.exp(mixer.gamma_log[direction])
            x = torch.zeros(2, 5, dtype=torch.complex128)
            ys = []
            for k in range(L):
                x = lam[direction] * x + gamma * (seq[:, k].to(torch.complex128) @ b.T)
                ys.append((x @ c.T).real)
            y = torch.stack(ys, 1)
            expected = expected + (y if direction == 0 else y.flip(1))
        torch.testing.assert_close(mixer.ssm(u), expected, rtol=1e-9, atol=1e-9)


def test_unidirectional_lru_is_the_forward_recurrence_alone():
    both = make("lru", d_state=5, r_min=0.5, r_max=0.99)
    forward = make("lru", d_state=5, r_min=0.5, r_max=0.99, bidirectional=False)
    assert forward.nu_log.shape == (1, 5) and forward.b.shape == (1, 2, 5, D)
    per_direction = ("nu_log", "theta_log", "gamma_log", "b", "c")
    source = dict(both.named_parameters())
    u = torch.randn(2, L, D, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    v = u.clone()
    v[:, -1] += 1.0
    with torch.no_grad():
        # Bidirectional: a change at the last position reaches earlier outputs (through the backward scan).
        assert not torch.allclose(both.ssm(v)[:, :-1], both.ssm(u)[:, :-1])
        for name, p in forward.named_parameters():  # the forward direction's draws, and the shared D and GLU
            p.copy_(source[name][:1] if name in per_direction else source[name])
        both.c[1].zero_()  # silence the backward direction: what is left must be the unidirectional layer
        torch.testing.assert_close(forward.ssm(u), both.ssm(u), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(forward.ssm(v)[:, :-1], forward.ssm(u)[:, :-1])  # causal


def test_lru_ring_init_and_gamma():
    mixer = build_mixer("lru", d_model=D, n_heads=1, max_len=L, dropout=0.0, d_state=2000, r_min=0.4, r_max=0.6)
    modulus = mixer.lam().abs()
    assert modulus.min() > 0.4 and modulus.max() < 0.6
    assert modulus.min() < 0.42 and modulus.max() > 0.58  # the whole ring is used
    torch.testing.assert_close(torch.exp(mixer.gamma_log), torch.sqrt(1 - modulus**2))
    with pytest.raises(LRAError, match="model.r_min"):
        build_mixer("lru", d_model=D, n_heads=1, max_len=L, dropout=0.0, r_min=0.9, r_max=0.5)


@pytest.mark.parametrize("name", ["s4d", "lru"])
def test_appended_padding_changes_no_real_output(name):
    mixer = make(name, d_state=8)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, L, D, dtype=torch.float64, generator=g)
    mask = torch.ones(2, L, dtype=torch.bool)
    pads = 20
    x_padded = torch.cat([x, torch.randn(2, pads, D, dtype=torch.float64, generator=g) * 5], 1)
    mask_padded = torch.cat([mask, torch.zeros(2, pads, dtype=torch.bool)], 1)
    with torch.no_grad():
        y, y_padded = mixer(x, mask), mixer(x_padded, mask_padded)
        torch.testing.assert_close(y_padded[:, :L], y, rtol=1e-9, atol=1e-9)
        # Without the mask the pads do reach real positions (the backward direction): the check can fail.
        assert not torch.allclose(mixer(x_padded, torch.ones_like(mask_padded))[:, :L], y)


@pytest.mark.parametrize("name", ["s4d", "lru"])
def test_gradients_reach_every_parameter(name):
    mixer = build_mixer(name, d_model=D, n_heads=1, max_len=L, dropout=0.0, d_state=8)
    x = torch.randn(2, L, D, requires_grad=True)
    mixer(x, torch.ones(2, L, dtype=torch.bool)).square().mean().backward()
    assert x.grad.abs().sum() > 0
    for pname, p in mixer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


def optimizer_for(layers: list[str], ssm_lr: float | None, bias_norm_decay: bool = True, **options):
    torch.manual_seed(0)
    encoder = Encoder(layers, vocab_size=10, max_len=16, d_model=8, n_heads=1, d_ff=16, dropout=0.0, attn_dropout=0.0,
                      mixer_options={name: options for name in layers})
    task = LRATask(encoder, n_classes=2, optim=OptimSettings(
        lr=1e-2, weight_decay=0.1, schedule="constant", warmup_steps=0, total_steps=10, ssm_lr=ssm_lr,
        bias_norm_decay=bias_norm_decay,
    ))
    return encoder, task.configure_optimizers()["optimizer"]


def group_names(encoder: torch.nn.Module, group: dict) -> set[str]:
    names = {id(p): n for n, p in encoder.named_parameters()}
    return {names[id(p)] for p in group["params"]}


@pytest.mark.parametrize("name, declared", [
    ("s4d", ("log_dt", "a_log_real", "a_imag", "b")), ("lru", ("nu_log", "theta_log", "gamma_log", "b")),
])
def test_ssm_parameters_get_their_own_group(name, declared):
    encoder, optimizer = optimizer_for([name, "attention", name], ssm_lr=1e-3)
    main, ssm = optimizer.param_groups
    assert group_names(encoder, ssm) == {f"blocks.{i}.mixer.{p}" for i in (0, 2) for p in declared}
    assert (ssm["lr"], ssm["weight_decay"]) == (1e-3, 0.0) and (main["lr"], main["weight_decay"]) == (1e-2, 0.1)
    assert len(main["params"]) + len(ssm["params"]) == len(list(encoder.parameters()))


def test_no_ssm_group_without_ssm_params_and_ssm_lr_defaults_to_lr():
    _, optimizer = optimizer_for(["attention"], ssm_lr=1e-3)
    assert len(optimizer.param_groups) == 1
    _, optimizer = optimizer_for(["s4d"], ssm_lr=None)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-2, 1e-2]


def test_s4d_step_at_the_main_lr_without_weight_decay():
    """dt_lr=lr (the S4 ListOps/Text/Retrieval recipes' lr.dt: null): log_dt at optim.lr, A and B at ssm_lr."""
    encoder, optimizer = optimizer_for(["s4d"], ssm_lr=1e-3, dt_lr="lr")
    main, no_decay, ssm = optimizer.param_groups
    assert group_names(encoder, no_decay) == {"blocks.0.mixer.log_dt"}
    assert (no_decay["lr"], no_decay["weight_decay"]) == (1e-2, 0.0)
    assert group_names(encoder, ssm) == {f"blocks.0.mixer.{p}" for p in ("a_log_real", "a_imag", "b")}
    with pytest.raises(LRAError, match="model.dt_lr"):
        build_mixer("s4d", d_model=D, n_heads=1, max_len=L, dropout=0.0, dt_lr="fast")


def test_bias_norm_decay_false_spares_biases_and_norm_weights():
    """The S4 code's grouping: no weight decay on biases and normalisation weights; the rest keeps it."""
    encoder, optimizer = optimizer_for(["s4d"], ssm_lr=1e-3, bias_norm_decay=False)
    main, no_decay, ssm = optimizer.param_groups
    spared = group_names(encoder, no_decay)
    assert "blocks.0.norm1.weight" in spared and "final_norm.weight" in spared and "blocks.0.ffn.0.bias" in spared
    assert all(n.endswith("bias") or "norm" in n for n in spared)
    decayed = group_names(encoder, main)
    assert "blocks.0.ffn.0.weight" in decayed and "embed.tokens.weight" in decayed and "blocks.0.mixer.c" in decayed
    assert not any(n.endswith("bias") for n in decayed) and no_decay["weight_decay"] == 0.0 == ssm["weight_decay"]
    assert len(main["params"]) + len(spared) + len(ssm["params"]) == len(list(encoder.parameters()))


def test_the_s4_block_has_no_feed_forward_and_no_position_embedding():
    """d_ff=0 and pos=none (the S4 recipes): the block is the mixer's residual branch alone, order from the SSM."""
    torch.manual_seed(0)
    encoder = Encoder(["s4d"], vocab_size=10, max_len=16, d_model=8, n_heads=1, d_ff=0, dropout=0.0,
                      attn_dropout=0.0, pool="mean", pos="none")
    block = encoder.blocks[0]
    assert block.ffn is None and block.norm2 is None
    ids, mask = torch.randint(1, 10, (2, 16)), torch.ones(2, 16, dtype=torch.bool)
    x, _ = encoder.embed(ids, mask)
    torch.testing.assert_close(x, encoder.embed.tokens(ids))
    encoder(ids, mask).sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())


# (model, norm, ssm_lr, bidirectional or dt_lr) under experiment=s4/listops: the S4 file, then the model's overlay.
RECIPE_SHAPE = {"s4d": ("post", 0.001, "lr"), "lru": ("pre", 0.0015, False)}


@pytest.mark.parametrize("model", ["s4d", "lru"])
def test_s4_recipe_trains_with_its_own_block_shape(model, listops_data, tmp_path):
    """experiment=s4/listops keeps its d_ff=0, batch-norm, pos=none blocks (tiny_run_overrides would set d_ff)."""
    overrides = [
        f"data_dir={listops_data}", f"output_dir={tmp_path / 'out'}", "experiment=s4/listops", f"model={model}",
        "logger=csv", "trainer.accelerator=cpu", "trainer.max_steps=2", "trainer.val_check_interval=2",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "task.batch_size=4",
        "task.num_workers=0", "task.max_len=32", "model.n_layers=1", "model.d_model=8", "model.d_state=4",
        "optim.warmup_steps=1",
    ]
    cfg = compose_train(overrides)
    norm, ssm_lr, own = RECIPE_SHAPE[model]
    assert (cfg.model.d_ff, cfg.model.norm, cfg.model.norm_type, cfg.model.pos) == (0, norm, "batch", "none")
    assert cfg.optim.ssm_lr == ssm_lr
    assert (cfg.model.dt_lr if model == "s4d" else cfg.model.bidirectional) == own
    assert 0.0 <= run(cfg) <= 1.0


@pytest.mark.parametrize("name", ["s4d", "lru"])
def test_dropout_sits_inside_the_layer_before_the_glu(name):
    """The mixer's dropout (model.attn_dropout) acts between the activation and the GLU in training only."""
    torch.manual_seed(0)
    mixer = build_mixer(name, d_model=D, n_heads=1, max_len=L, dropout=0.5, d_state=4)
    x, mask = torch.randn(2, L, D), torch.ones(2, L, dtype=torch.bool)
    assert not torch.allclose(mixer(x, mask), mixer(x, mask))
    mixer.eval()
    torch.testing.assert_close(mixer(x, mask), mixer.out(mixer.act(mixer.ssm(x))))
