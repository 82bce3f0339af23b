"""model.block=fnet: FNet as its own code builds it (lra.models.fnet_block), against HF transformers' FNetModel (a
port of that code) weight for weight, with its dropout count and placement, embedding path and init pinned."""

import json

import pytest
import torch
from torch import nn
from transformers import FNetConfig, FNetModel

from lra.errors import LRAError
from lra.models import build_model, count_parameters
from lra.models.encoder import Encoder
from lra.models.init import initialise
from lra.run.config import compose_train
from lra.run.train import run
from tests.helpers import tiny_run_overrides

V, L, D, FF, N = 20, 32, 16, 24, 2  # vocab (CLS id V - 1 included), length, width, feed-forward, layers


def fnet_encoder(mixers: list[str] | None = None, dropout: float = 0.0, **options) -> Encoder:
    settings = {"norm": "post", "pool": "cls", "pos": "learned", "cls_token": "shift", "block": "fnet", **options}
    return Encoder(mixers or ["fourier"] * N, V, L, D, 2, FF, dropout, 0.0, **settings)


def hf_names(layers: int) -> dict[str, str]:
    """Our parameter names -> HF FNetModel's (the position table is ours [1, L, D], theirs [L, D])."""
    names = {
        "embed.tokens.weight": "embeddings.word_embeddings.weight",
        "embed.types.weight": "embeddings.token_type_embeddings.weight",
        "embed.norm.weight": "embeddings.LayerNorm.weight", "embed.norm.bias": "embeddings.LayerNorm.bias",
        "embed.project.weight": "embeddings.projection.weight", "embed.project.bias": "embeddings.projection.bias",
        "pooler.dense.weight": "pooler.dense.weight", "pooler.dense.bias": "pooler.dense.bias",
    }
    for i in range(layers):
        hf = f"encoder.layer.{i}"
        for ours, theirs in [("norm1", "fourier.output.LayerNorm"), ("ffn.0", "intermediate.dense"),
                             ("ffn.2", "output.dense"), ("norm2", "output.LayerNorm")]:
            names |= {f"blocks.{i}.{ours}.{p}": f"{hf}.{theirs}.{p}" for p in ("weight", "bias")}
    return names


def test_fnet_block_computes_hf_fnetmodel_with_its_weights():
    torch.manual_seed(0)
    config = FNetConfig(vocab_size=V, hidden_size=D, intermediate_size=FF, num_hidden_layers=N,
                        max_position_embeddings=L, pad_token_id=0)
    hf, ours = FNetModel(config).eval(), fnet_encoder().eval()
    assert count_parameters(ours) == count_parameters(hf) == 3216
    theirs = hf.state_dict()
    weights = {ours_name: theirs[name] for ours_name, name in hf_names(N).items()}
    weights["embed.pos"] = theirs["embeddings.position_embeddings.weight"][None]
    ours.load_state_dict(weights, strict=True)

    ids = torch.randint(1, V - 1, (3, L))
    out = hf(input_ids=torch.cat([torch.full((3, 1), V - 1), ids[:, :-1]], dim=1))  # the CLS id shifted in
    features, _ = ours.features(ids, torch.ones(3, L, dtype=torch.bool))
    torch.testing.assert_close(features, out.last_hidden_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.pooling(features, None), out.pooler_output, atol=1e-6, rtol=1e-5)


def dropouts_drawn(encoder: Encoder) -> list[str]:
    """The nn.Dropout modules (p > 0) that one training forward calls, in order."""
    called: list[str] = []
    handles = [m.register_forward_hook(lambda *_, name=name: called.append(name))
               for name, m in encoder.named_modules() if isinstance(m, nn.Dropout) and m.p > 0]
    encoder.train()(torch.randint(0, V - 1, (2, L)), torch.ones(2, L, dtype=torch.bool))
    for handle in handles:
        handle.remove()
    return called


def test_dropout_only_in_the_embedding_and_after_each_feed_forward():
    assert dropouts_drawn(fnet_encoder(dropout=0.1)) == ["embed.drop", "blocks.0.ffn.3", "blocks.1.ffn.3"]
    lra_block = fnet_encoder(dropout=0.1, block="lra")
    assert len(dropouts_drawn(lra_block)) == 1 + 3 * N  # after the mixer, inside and after the feed-forward


def test_embedding_is_layernorm_then_projection_then_dropout():
    torch.manual_seed(1)
    encoder = fnet_encoder(dropout=0.5, cls_token="learned")
    embed = encoder.embed
    ids = torch.randint(0, V, (4, L - 1))
    with torch.no_grad():
        tokens = torch.cat([embed.cls.expand(4, -1, -1), embed.tokens(ids)], dim=1)
        expected = embed.project(embed.norm(tokens + embed.pos[:, :L] + embed.types.weight[0]))
        assert embed.norm.eps == 1e-12
        embed.train()
        dropped, _ = embed(ids, torch.ones(4, L - 1, dtype=torch.bool))
    kept = dropped != 0
    assert 0.4 < kept.float().mean() < 0.6  # dropout is the last step: half the outputs zeroed, the rest scaled
    torch.testing.assert_close(dropped[kept], 2 * expected[kept])


def test_fnet_init_follows_the_code():
    torch.manual_seed(2)
    encoder = initialise(fnet_encoder(cls_token="learned"), "fnet")
    block = encoder.blocks[0]
    assert abs(block.ffn[0].weight.std().item() - 0.02) < 0.004 and abs(block.ffn[0].bias.std().item() - 0.02) < 0.01
    assert abs(encoder.embed.tokens.weight.std().item() - 0.02) < 0.004
    assert not block.ffn[2].bias.any() and not encoder.pooler.dense.bias.any() and not encoder.embed.project.bias.any()
    assert abs(encoder.embed.project.weight.std().item() - D ** -0.5) < 0.06  # lecun-normal: flax Dense defaults
    assert encoder.embed.cls.abs().max() > 0
    assert isinstance(block.ffn[1], nn.GELU) and block.ffn[1].approximate == "tanh"


def test_hybrid_attention_has_biased_projections(listops_data, tmp_path):
    cfg = compose_train(["model=fnet_hybrid", "model.block=fnet", "model.init=fnet", "model.n_layers=3",
                         f"data_dir={listops_data}", "task.max_len=32", "model.d_model=16", "model.n_heads=2"])
    model = build_model(cfg.model, {"vocab_size": V - 1, "max_len": L, "n_classes": 10})
    attention = [b.mixer for b in model.encoder.blocks][1:]
    assert all(m.qkv.bias is not None and m.out.bias is not None for m in attention)
    assert count_parameters(attention[0]) == 4 * 16 * 16 + 4 * 16  # q, k, v, out with biases, qkv_features = d_model
    assert model.encoder.blocks[0].mixer.__class__.__name__ == "FourierMixer"


@pytest.mark.parametrize("options, says", [
    ({"norm": "pre"}, "model.norm=post"), ({"pool": "mean"}, "model.pool=cls or first"),
    ({"block": "x"}, "model.block"),
])
def test_settings_the_code_cannot_follow_are_refused(options, says):
    with pytest.raises(LRAError, match=says):
        fnet_encoder(**options)


def test_a_resizing_mixer_is_refused():
    encoder = fnet_encoder(["fourier_transformer"] * N, pool="first", cls_token="learned")
    with pytest.raises(LRAError, match="model.block=lra"):
        encoder(torch.randint(0, V, (2, L)), torch.ones(2, L, dtype=torch.bool))


@pytest.mark.parametrize("model", ["fnet", "fnet_hybrid"])
def test_fnet_own_code_trains(listops_data, tmp_path, model):
    out = tmp_path / "run"
    overrides = [f"model={model}", "model.block=fnet", "model.init=fnet", "model.n_layers=3"]
    run(compose_train([*overrides, *tiny_run_overrides(listops_data, out, steps=2), "task.max_len=32"]))
    results = json.loads((out / "results.json").read_text())
    assert results["step"] == 2 and 0.0 <= results["test_acc"] <= 1.0
