"""The locality probe (lra.probe.locality) and the mixer contract's `restrict` behind it."""

import json

import pytest
import torch

from lra.models import build_model
from lra.models.mixers import MIXERS, build_mixer
from lra.models.mixers.registry import RELEASE
from lra.probe.locality import main, probe
from lra.run.config import compose_train
from tests.helpers import tiny_run_overrides, train_py

D, H, L, W = 16, 2, 24, 3


def restricted(name: str, impl: str = "paper", **options) -> tuple[torch.nn.Module, bool]:
    torch.manual_seed(0)
    mixer = build_mixer(name, d_model=D, n_heads=H, max_len=L, dropout=0.0, impl=impl, **options).eval()
    return mixer, mixer.restrict(W)


def reach(mixer: torch.nn.Module, mask: torch.Tensor | None = None) -> torch.Tensor:
    """[L, L] bool: whether output i depends on input j (from the gradients), sequence 0 of a batch of one."""
    mask = torch.ones(1, L, dtype=torch.bool) if mask is None else mask
    x = torch.randn(1, L, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64, requires_grad=True)
    mixer = mixer.double()
    out = torch.zeros(L, L, dtype=torch.bool)
    for i in range(L):
        (grad,) = torch.autograd.grad(mixer(x, mask)[0, i].sum(), x)
        out[i] = grad[0].abs().sum(-1) > 1e-12
    return out


BAND = (torch.arange(L)[None] - torch.arange(L)[:, None]).abs() <= W
# Restricted exactly to the band: every position within the window reaches, none beyond.
EXACT = [("attention", {}), ("s4d", {"d_state": 4}), ("lru", {"d_state": 4}), ("conv", {"kernel": 9})]


@pytest.mark.parametrize("name, options", EXACT)
def test_restricted_reach_is_exactly_the_band(name, options):
    mixer, ok = restricted(name, **options)
    assert ok and torch.equal(reach(mixer), BAND)
    mixer.restrict(None)
    assert reach(mixer).sum() > BAND.sum(), "restrict(None) gives the full reach back"


def test_local_attention_is_banded_inside_its_blocks():
    mixer, ok = restricted("local", block_size=8)
    blocks = torch.arange(L) // 8
    assert ok and torch.equal(reach(mixer), BAND & (blocks[:, None] == blocks[None]))


def test_a_banded_attention_row_of_pads_is_finite_and_pads_stay_out():
    mixer, _ = restricted("attention")
    mask = torch.arange(L)[None] < 10
    x = torch.randn(1, L, D)
    y = mixer(x, mask)
    assert torch.isfinite(y).all()
    noisy = torch.where(mask[..., None], x, torch.randn(1, L, D) * 5)
    assert torch.allclose(mixer(noisy, mask)[mask], y[mask], atol=1e-5)


@pytest.mark.parametrize("name", sorted(n for n in MIXERS if n not in ("attention", "local", "s4d", "lru", "conv")))
def test_other_mixers_say_they_cannot_be_restricted(name):
    assert restricted(name)[1] is False


@pytest.mark.parametrize("name", sorted(RELEASE))
def test_release_mixers_restrict_only_where_the_band_is_a_band(name):
    assert restricted(name, impl="release")[1] is (name == "attention")


# The probe on a trained model: the label is whether two tokens DIST apart differ (an XOR of positions 0 and DIST).
SEQ, DIST = 48, 30


def far_pairs(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 3, (n, SEQ), generator=g)
    return {"input_ids": ids, "mask": torch.ones(n, SEQ, dtype=torch.bool),
            "label": (ids[:, 0] != ids[:, DIST]).long()}


def test_probe_finds_the_distance_a_trained_attention_model_needs():
    """One exact-attention layer, read at position 0: cut below DIST it is at chance, at DIST and above it keeps
    its accuracy. (The probe can fail: a probe that did not restrict would keep it everywhere.)"""
    cfg = compose_train(["model=transformer", "model.n_layers=1", "model.d_model=32", "model.n_heads=2",
                         "model.d_ff=64", "model.pool=first", "model.pos=learned", "model.dropout=0",
                         "model.attn_dropout=0", f"task.max_len={SEQ}"])
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.task)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(300):
        batch = far_pairs(64, step)
        loss = torch.nn.functional.cross_entropy(model(batch), batch["label"])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    result = probe(model, [far_pairs(256, 10_000)], [8, 16, DIST - 1, DIST, 64], torch.device("cpu"))
    acc = {row["window"]: row["test_acc"] for row in result["windows"]}
    assert result["full_test_acc"] > 0.95
    assert max(acc[8], acc[16], acc[DIST - 1]) < 0.65
    assert min(acc[DIST], acc[64]) > 0.95
    assert result["restricted"] == ["layer 0: Attention"] and result["skipped"] == []


def test_cli_writes_table_and_plot_into_the_run_directory(listops_data, tmp_path, capsys, monkeypatch):
    """A run of train.py (its .hydra/config.yaml), probed from its directory: FNet layers are skipped."""
    out = tmp_path / "run"
    assert train_py(["model=fnet_hybrid", *tiny_run_overrides(listops_data, out, steps=2), "model.n_layers=3",
                     "task.max_len=32", f"hydra.run.dir={out}"], monkeypatch) == 0
    assert main([str(out), "--windows", "4,2,16"]) == 0
    printed = capsys.readouterr().out
    assert "layer 0: FourierMixer cannot be restricted: it keeps its full reach" in printed
    record = json.loads((out / "locality.json").read_text())
    assert [row["window"] for row in record["windows"]] == [2, 4, 16]
    assert record["restricted"] == ["layer 1: Attention", "layer 2: Attention"]
    assert record["results_test_acc"] == json.loads((out / "results.json").read_text())["test_acc"]
    assert record["checkpoint"].endswith(".ckpt") and (out / "locality.png").stat().st_size > 0
    assert "| full |" in (out / "locality.md").read_text()
    # a checkpoint file, its config named: the run directory is the checkpoint's
    checkpoint, config = out / "checkpoints" / "last.ckpt", out / ".hydra" / "config.yaml"
    assert main([str(checkpoint), "--windows", "1", "--config", str(config)]) == 0
    assert json.loads((out / "locality.json").read_text())["checkpoint"] == str(checkpoint)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no checkpoints/best-step*.ckpt" in capsys.readouterr().err
    (tmp_path / "empty" / "checkpoints").mkdir()
    (tmp_path / "empty" / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert main([str(tmp_path / "empty")]) == 2
    assert "no run config (.hydra/config.yaml or config.yaml)" in capsys.readouterr().err
