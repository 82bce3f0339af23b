"""model.pos=rotary: queries and keys rotated in the headed-projection base, for every mixer that has them."""

import pytest
import torch
from omegaconf import OmegaConf

from lra.errors import LRAError
from lra.models import build_model
from lra.models.mixers import MIXERS, Mixer, build_mixer
from lra.models.mixers.registry import resolve
from lra.run.config import CONF_DIR, choices, compose_train
from tests.helpers import TINY_MODEL

D, H, L = 32, 4, 24


def mixer_class(model: str, impl: str):
    """The class conf/model/<model>.yaml selects (its `mixer`, or that of the config it extends)."""
    cfg = OmegaConf.load(CONF_DIR / "model" / f"{model}.yaml")
    if "mixer" not in cfg:
        return mixer_class(next(d for d in cfg.defaults if d != "_base"), impl)
    return resolve(cfg.mixer, impl)


ROTARY = [(m, impl) for m in choices(CONF_DIR, "model") for impl in ("paper", "release")
          if mixer_class(m, impl).queries_and_keys() and (impl == "paper" or mixer_class(m, impl).released)]
WITHOUT = [m for m in choices(CONF_DIR, "model") if not mixer_class(m, "paper").queries_and_keys()]


def test_the_attention_family_is_covered():
    names = {m for m, _ in ROTARY}
    assert {"transformer", "performer", "reformer", "nystromformer", "bigbird", "local"} <= names
    assert {"fnet", "s4d", "lru", "conv", "luna", "synthesizer"} <= set(WITHOUT)


@pytest.mark.parametrize("name", ["attention", "performer", "reformer", "local", "nystromformer"])
def test_scores_depend_only_on_the_relative_offset(name):
    """With one token vector everywhere, q_i . k_j under rotary is a function of j - i (a Toeplitz matrix), and
    not a constant one: the position is there, and only as an offset."""
    torch.manual_seed(0)
    mixer = build_mixer(name, d_model=D, n_heads=H, max_len=L, dropout=0.0, rotary=True)
    x = torch.randn(1, 1, D).expand(1, L, D)
    parts = mixer.heads(x)
    q, k = parts[0], parts[1] if len(parts) == 3 else parts[0]  # Reformer's keys are its queries
    scores = q @ k.transpose(-1, -2)  # [1, H, L, L]
    assert torch.allclose(scores[..., 1:, 1:], scores[..., :-1, :-1], atol=1e-4)
    by_offset = scores[0, :, 0]  # [H, L]: offsets 0 .. L-1
    assert (by_offset - by_offset[:, :1]).abs().amax() > 1e-2


@pytest.mark.parametrize("model, impl", ROTARY)
def test_every_attention_family_mixer_trains_two_steps_with_rotary(model, impl):
    cfg = compose_train([f"model={model}", "model.pos=rotary", f"model.impl={impl}", *TINY_MODEL,
                         "task.max_len=32", "model.dropout=0.0"])
    torch.manual_seed(0)
    net = build_model(cfg.model, cfg.task).train()
    assert net.encoder.embed.pos.abs().sum() == 0, "the embedding adds no position under rotary"
    assert all(block.mixer.rotary for block in net.encoder.blocks)
    g = torch.Generator().manual_seed(0)
    mask = torch.arange(32)[None] < torch.tensor([[32], [20], [9], [27]])
    batch = {"input_ids": torch.randint(1, 17, (4, 32), generator=g) * mask, "mask": mask,
             "label": torch.tensor([0, 1, 2, 3])}
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in net.parameters()]
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(net(batch), batch["label"])
        assert torch.isfinite(loss)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True))


@pytest.mark.parametrize("model", WITHOUT)
def test_a_mixer_without_queries_and_keys_stops_with_one_line(model):
    # 3 layers: fnet_hybrid's attention takes the last two
    cfg = compose_train([f"model={model}", "model.pos=rotary", *TINY_MODEL, "model.n_layers=3", "task.max_len=32"])
    with pytest.raises(LRAError, match=r"^model.pos=rotary rotates queries and keys, and mixer \w+ has none; use"):
        build_model(cfg.model, cfg.task)


def test_a_user_mixer_that_takes_no_rotary_option_stops_too(monkeypatch):
    monkeypatch.setitem(MIXERS, "plain", Plain)
    with pytest.raises(LRAError, match=r"^model.pos=rotary rotates queries and keys, and mixer Plain has none"):
        build_mixer("plain", d_model=D, n_heads=H, max_len=L, dropout=0.0, rotary=True)


def test_odd_head_width_and_unknown_pos_are_one_line():
    with pytest.raises(LRAError, match=r"^model.pos=rotary needs an even head width; 12 / 4 heads is odd"):
        build_mixer("attention", d_model=12, n_heads=4, max_len=L, dropout=0.0, rotary=True)
    cfg = compose_train(["model=transformer", "model.pos=alibi", *TINY_MODEL])
    with pytest.raises(LRAError, match=r"^model.pos='alibi' is not a position scheme; use sinusoidal, learned"):
        build_model(cfg.model, cfg.task)


class Plain(Mixer):
    """A user's mixer that takes only the core four."""

    def __init__(self, d_model: int, n_heads: int, max_len: int, dropout: float) -> None:
        super().__init__(d_model, n_heads, max_len, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x
