"""The encoder, head, schedule and config parts of impl=release, each pinned from the release's maths."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lra.models import build_model
from lra.models.classifier import Classifier
from lra.models.encoder import Encoder
from lra.models.init import initialise
from lra.models.mixers import build_mixer
from lra.run.config import compose_train
from lra.run.schedules import cosine_release

TASKS = ["listops", "text", "retrieval", "image", "pathfinder", "pathx"]
RELEASE_MODELS = ["transformer", "local", "sparse", "longformer", "linformer", "reformer", "sinkhorn",
                  "synthesizer", "bigbird", "linear_transformer", "performer"]


def encoder(**kw) -> Encoder:
    torch.manual_seed(0)
    args = dict(layers=["attention"], vocab_size=10, max_len=12, d_model=16, n_heads=2, d_ff=32, dropout=0.0,
                attn_dropout=0.0)
    return Encoder(**{**args, **kw}).eval()


def test_retrieval_release_head_is_u_v_then_three_dense_layers():
    cfg = compose_train(["experiment=lra/retrieval", "model=transformer", "model.d_model=32", "model.d_ff=64"])
    model = build_model(cfg.model, cfg.task)
    shapes = [(m.in_features, m.out_features) for m in model.head if isinstance(m, nn.Linear)]
    assert shapes == [(64, 64), (64, 32), (32, 2)]
    assert [type(m) for m in model.head] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert model.encoder.embed.cls is None and model.encoder.pool == "first"


def test_first_pooling_reads_position_zero_without_a_cls_token():
    enc = encoder(pool="first")
    ids = torch.randint(1, 10, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.bool)
    features, _ = enc.features(ids, mask)
    assert features.shape[1] == 12  # no CLS position added
    torch.testing.assert_close(enc(ids, mask), features[:, 0])


def test_mean_all_pooling_averages_every_position_padding_included():
    enc = encoder(pool="mean_all")
    ids = torch.randint(1, 10, (2, 12))
    mask = torch.arange(12)[None] < torch.tensor([[12], [5]])
    states = {}
    enc.final_norm.register_forward_hook(lambda m, i, o: states.update(out=o))
    pooled = enc(ids, mask)
    torch.testing.assert_close(pooled, states["out"].mean(1))
    masked_mean = (states["out"][1, :5]).mean(0)
    assert not torch.allclose(pooled[1], masked_mean), "mean_all must not be the masked mean"


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_zero_is_pad_masks_token_zero_and_cls_takes_the_first_tokens_mask(pool):
    enc = encoder(pool=pool, zero_is_pad=True)
    seen = {}
    mixer = enc.blocks[0].mixer
    mixer.register_forward_pre_hook(lambda m, args: seen.update(mask=args[1].clone()))
    ids = torch.tensor([[0, 3, 0, 5, 0, 0, 7, 1, 0, 2, 0, 4], [6, 0, 0, 2, 2, 0, 1, 0, 0, 3, 0, 0]])
    enc.features(ids, torch.ones_like(ids, dtype=torch.bool))  # every position (forward: position 0 alone at the end)
    expected = ids > 0
    if pool == "cls":  # the release concatenates src_padding_mask[:, :1] in front
        expected = torch.cat([expected[:, :1], expected], dim=1)
    assert torch.equal(seen["mask"], expected)


def test_zero_is_pad_off_keeps_pixel_zero_real():
    enc = encoder(pool="mean")
    seen = {}
    enc.blocks[0].mixer.register_forward_pre_hook(lambda m, args: seen.update(mask=args[1].clone()))
    ids = torch.zeros(1, 12, dtype=torch.long)
    enc(ids, torch.ones_like(ids, dtype=torch.bool))
    assert seen["mask"].all()


def test_release_init_is_xavier_uniform_with_tiny_biases():
    torch.manual_seed(0)
    model = Classifier(encoder(), 16, 32, 3, dual=False, interaction="paper")
    initialise(model, "release")
    qkv = model.encoder.blocks[0].mixer.qkv
    for part in qkv.weight.chunk(3, dim=0):  # one xavier bound per q, k, v Dense, as the release had them
        bound = math.sqrt(6.0 / (16 + 16))
        assert 0.8 * bound < part.abs().max() <= bound
    head = set(model.head)  # flax nn.Dense defaults there: tests/test_release_gaps.py
    for layer in model.modules():
        if isinstance(layer, nn.Linear) and layer is not qkv and layer not in head:
            bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))
            assert layer.weight.abs().max() <= bound
            assert layer.weight.abs().max() > 0.8 * bound  # uniform over the whole range, not PyTorch's smaller one
            if layer.bias is not None:
                assert layer.bias.abs().max() < 1e-5


def test_qkv_dim_sets_the_attention_width_and_release_drops_the_output_bias():
    paper = build_mixer("attention", d_model=32, n_heads=4, max_len=8, dropout=0.0, qkv_dim=16)
    release = build_mixer("attention", d_model=32, n_heads=4, max_len=8, dropout=0.0, qkv_dim=16, impl="release")
    assert paper.qkv.weight.shape == (48, 32) and paper.out.weight.shape == (32, 16) and paper.head_dim == 4
    assert paper.out.bias is not None and release.out.bias is None
    y = release(torch.randn(2, 8, 32), torch.ones(2, 8, dtype=torch.bool))
    assert y.shape == (2, 8, 32)


def test_cosine_release_formula():
    warmup, total = 10, 100
    assert cosine_release(0, warmup, total) == 0.0
    assert cosine_release(5, warmup, total) == pytest.approx(0.5)
    assert cosine_release(warmup, warmup, total) == pytest.approx(1.0)
    # progress divides by total, not total - warmup: at the last step the factor is still above 0
    assert cosine_release(total, warmup, total) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.9)))
    assert cosine_release(total, warmup, total) > 0.02


@pytest.mark.parametrize("task", TASKS)
def test_lra_experiments_set_the_release_for_every_model(task):
    for model in ["transformer", "fnet", "local", "sinkhorn"]:
        cfg = compose_train([f"experiment=lra/{task}", f"model={model}"])
        assert cfg.model.impl == "release" and cfg.model.init == "release"
    plain = compose_train([f"task={task}", "model=local"])
    assert plain.model.impl == "paper" and plain.model.init == "torch"
    pixels = task in ("image", "pathfinder", "pathx")
    assert cfg.model.zero_is_pad == pixels
    assert (cfg.optim.schedule == "cosine_release") == pixels


@pytest.mark.parametrize("task", ["listops", "text", "image", "pathfinder"])
def test_release_sinkhorn_classifies_through_an_unmasked_mean_and_one_dense(task):
    cfg = compose_train([f"experiment=lra/{task}", "model=sinkhorn"])
    assert cfg.model.pool == "mean_all" and cfg.model.head == "linear"
