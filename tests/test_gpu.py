"""What only a GPU can tell: bf16 autocast of every model, the SDPA kernel chosen, cuFFT at awkward lengths, the
GradScaler under 16-mixed, torch.compile with inductor's GPU code, DDP over NCCL. Every test here skips without
CUDA (with the reason, shown by `pytest -rs`); `python -m lra.bench.gpu` runs this module first on a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from lra.bench.sdpa import sdpa_kernels
from lra.models import build_model
from lra.models.mixers.fourier import fourier_mix
from lra.run.config import CONF_DIR, compose_train
from tests.helpers import ROOT, TINY, TINY_MODEL
from tests.task_fixtures import write_listops

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: GPU-only checks")

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if not p.stem.startswith("_"))
CUDA = torch.device("cuda")


def tiny(model: str, length: int = 64, *overrides: str) -> torch.nn.Module:
    cfg = compose_train([f"model={model}", *TINY_MODEL, f"task.max_len={length}", *overrides])
    torch.manual_seed(0)
    return build_model(cfg.model, cfg.task).to(CUDA)


def batch(length: int = 64, size: int = 4, padded: bool = True) -> dict:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(length // 2, length + 1, (size,), generator=g) if padded else torch.full((size,), length)
    mask = torch.arange(length)[None] < lengths[:, None]
    ids = torch.randint(1, 17, (size, length), generator=g) * mask
    data = {"input_ids": ids, "mask": mask, "label": torch.randint(0, 10, (size,), generator=g)}
    return {**{k: v.to(CUDA) for k, v in data.items()}, "padded": padded}


@pytest.mark.parametrize("model", MODELS)
def test_bf16_autocast_trains_every_model(model):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    net = tiny(model).train()
    data = batch()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = net(data)
    loss = F.cross_entropy(logits.float(), data["label"])
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    with torch.no_grad():  # close to fp32 (bf16 keeps ~3 significant digits)
        net.eval()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = net(data).float()
        assert torch.allclose(low, net(data), atol=0.1, rtol=0.1)


def test_an_unpadded_bf16_batch_reaches_flash_attention():
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    net = tiny("transformer", 256, "model.attn_dropout=0.0").train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        unpadded = sdpa_kernels(lambda: net(batch(256, padded=False)))
        padded = sdpa_kernels(lambda: net(batch(256, padded=True)))
    print(f"SDPA kernels: unpadded {unpadded}, padded {padded}")
    assert set(unpadded) <= {"flash_attention", "cudnn_attention"}, unpadded
    assert "flash_attention" not in padded  # a boolean mask rules FlashAttention out


@pytest.mark.parametrize("length", [4001, 8002, 16384])
def test_cufft_at_awkward_lengths_matches_the_dft(length):
    """2L = 8002 = 2 x 4001 (prime): cuFFT's slowest plans; all paths must agree with float64 numpy-style FFT."""
    x = torch.randn(2, length, 8, device=CUDA)
    expected = torch.fft.fftn(x.double(), dim=(-2, -1)).real
    for path in ("rfft", "fft"):
        got = fourier_mix(x, path).double()
        assert torch.allclose(got, expected, atol=1e-3 * length**0.5, rtol=1e-4), path


def test_gradscaler_with_16_mixed_skips_an_overflow_and_trains(tmp_path, monkeypatch):
    from tests.helpers import train_py

    write_listops(tmp_path / "data" / "listops-1000")
    out = tmp_path / "run"
    code = train_py([f"data_dir={tmp_path / 'data'}", f"hydra.run.dir={out}", *TINY, "trainer.accelerator=gpu",
                     "trainer.precision=16-mixed", "trainer.max_steps=6"], monkeypatch)
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["step"] == 6 and 0.0 <= results["test_acc"] <= 1.0
    assert results["hardware"] == f"1 x {torch.cuda.get_device_name(0)}" and results["train_wall_s"] > 0


@pytest.mark.parametrize("model", ["fnet", "transformer", "s4d", "lru", "performer"])
def test_inductor_compile_on_gpu_matches_eager(model):
    torch._dynamo.reset()
    eager, compiled = tiny(model, 64, "model.dropout=0.0", "model.attn_dropout=0.0"), None
    compiled = tiny(model, 64, "model.dropout=0.0", "model.attn_dropout=0.0", "model.compile=true")
    data = batch()
    with torch.no_grad():
        assert torch.allclose(compiled.eval()(data), eager.eval()(data), atol=1e-4, rtol=1e-4)


def test_ddp_over_nccl_with_two_gpus(tmp_path):
    if torch.cuda.device_count() < 2:
        pytest.skip(f"{torch.cuda.device_count()} GPU visible: DDP over NCCL needs 2")
    write_listops(tmp_path / "data" / "listops-1000")
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "train.py", "trainer=ddp", "trainer.devices=2", "trainer.accelerator=gpu",
         f"data_dir={tmp_path / 'data'}", f"hydra.run.dir={out}", f"output_dir={out}",
         *[o for o in TINY if not o.startswith("trainer.accelerator")]],
        cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["step"] == 4 and results["hardware"].startswith("2 x ")
