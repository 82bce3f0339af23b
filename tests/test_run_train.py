"""lra.run.train end to end: the real configs, a few CPU steps, results.json, resume, disk errors; and train.py."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import lra.run.train
from lra.errors import LRAError
from lra.run.callbacks import Throughput
from lra.run.config import compose_train
from lra.run.results import FIELDS
from lra.run.train import run
from tests.helpers import ROOT, TINY_MODEL, tiny_run_overrides


@pytest.mark.parametrize("model", ["fnet", "transformer"])
def test_train_py_writes_results(listops_data, tmp_path, model):
    out = tmp_path / "run"
    overrides = [f"model={model}", *tiny_run_overrides(listops_data, out), "task.max_len=32"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run(
        [sys.executable, "train.py", *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert set(FIELDS) <= set(results)
    assert results["task"] == "listops" and results["model"] == model and results["step"] == 4
    for key in ("best_val_acc", "test_acc", "test_acc_last"):
        assert 0.0 <= results[key] <= 1.0
    assert results["n_params"] > 0 and results["steps_per_s"] is None or results["steps_per_s"] > 0
    assert results["train_wall_s"] > 0 and results["hardware"].startswith("cpu, ")
    assert f"best val acc {results['best_val_acc']:.4f}" in proc.stdout


def test_resume_continues_from_the_checkpoint_step(listops_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    run(compose_train([*tiny_run_overrides(listops_data, out, steps=4), "task.max_len=32"]))
    assert json.loads((out / "results.json").read_text())["step"] == 4
    walls = {  # every checkpoint carries the fit's wall time so far
        torch.load(path, map_location="cpu", weights_only=False)["callbacks"]["Throughput"]["wall_s"]
        for path in (out / "checkpoints").glob("*.ckpt")
    }

    meters = []
    monkeypatch.setattr(lra.run.train, "Throughput", lambda: meters.append(Throughput()) or meters[-1])
    run(compose_train([*tiny_run_overrides(listops_data, out, steps=8), "task.max_len=32", "ckpt_path=last"]))
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["step"] == 8
    assert meters[0].steps == 4, "the resumed fit must run only the steps after the checkpoint"
    # The wall time continues from the checkpoint's: the first segment's time plus this one's.
    assert meters[0].restored and meters[0].earlier_wall_s in walls and min(walls) > 0
    assert resumed["train_wall_s"] > meters[0].earlier_wall_s


def test_a_resume_without_the_earlier_wall_time_reports_none():
    meter, module = Throughput(), torch.nn.Linear(1, 1)
    module.device = torch.device("cpu")
    meter.on_fit_start(SimpleNamespace(ckpt_path="old.ckpt", world_size=1), module)
    meter.on_fit_end(SimpleNamespace(), module)
    assert meter.wall_s() is None and meter.state_dict() == {}
    fresh = Throughput()
    fresh.on_fit_start(SimpleNamespace(ckpt_path=None, world_size=1), module)
    assert fresh.wall_s() >= 0 and " x 1 process: " in fresh.hardware


def test_the_default_loggers_keep_a_csv_log_beside_wandb(listops_data, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    out = tmp_path / "run"
    overrides = [o for o in tiny_run_overrides(listops_data, out) if not o.startswith("logger=")]
    run(compose_train([*overrides, "task.max_len=32"]))
    header = (out / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"step", "val/acc", "val/loss"} <= set(header)
    assert (out / "wandb_id").is_file(), "the W&B logger ran too"


def test_resume_without_checkpoint_is_one_clear_line(listops_data, tmp_path):
    cfg = compose_train([*tiny_run_overrides(listops_data, tmp_path / "fresh"), "ckpt_path=last"])
    with pytest.raises(LRAError, match=r"ckpt_path=last: no readable checkpoint in .*checkpoints; pass hydra.run.dir="):
        run(cfg)


def test_interface_keys_override(monkeypatch):
    monkeypatch.setenv("LRA_DATA", "/datasets/lra")
    keys = [
        "seed=7", "trainer.max_steps=11", "task.batch_size=3", "task.max_len=100", "model.n_layers=3",
        "model.d_model=48", "model.n_heads=6", "model.d_ff=96", "model.dropout=0.25",
    ]
    for model in ("fnet", "transformer"):
        cfg = compose_train([f"model={model}", *keys])
        assert cfg.data_dir == "/datasets/lra" and cfg.task.path == "/datasets/lra/listops-1000"
        assert (cfg.seed, cfg.trainer.max_steps, cfg.task.batch_size, cfg.task.max_len) == (7, 11, 3, 100)
        assert (cfg.model.n_layers, cfg.model.d_model, cfg.model.n_heads, cfg.model.d_ff) == (3, 48, 6, 96)
        assert cfg.model.dropout == 0.25
    assert compose_train(["data_dir=/elsewhere"]).task.path == "/elsewhere/listops-1000"


def test_default_is_the_released_listops_recipe():
    cfg = compose_train(["model=transformer"])
    model, optim = cfg.model, cfg.optim
    assert (model.n_layers, model.d_model, model.n_heads, model.d_ff, model.norm, model.pool) == (
        4, 512, 8, 1024, "pre", "cls"
    )
    assert (cfg.task.max_len, cfg.task.batch_size, cfg.trainer.max_steps) == (2000, 32, 5000)
    assert (optim.lr, optim.schedule, optim.warmup_steps, optim.weight_decay) == (0.05, "rsqrt", 1000, 0.1)
    assert compose_train(["model=fnet"]).model.norm == "post"


def test_missing_data_is_one_line_from_the_command_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "train.py", f"data_dir={tmp_path}", f"output_dir={tmp_path / 'out'}", "logger=csv",
         *TINY_MODEL],
        cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ListOps not found:")
    assert "Traceback" not in proc.stderr


def test_disk_full_is_one_clear_line(listops_data, tmp_path, monkeypatch):
    def full(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "run"
    with pytest.raises(LRAError) as caught:
        run(compose_train([*tiny_run_overrides(listops_data, out), "task.max_len=32"]))
    message = str(caught.value)
    assert message.startswith(f"cannot write {out / 'checkpoints'}")
    assert message.endswith(": No space left on device; free space or point output_dir (hydra.run.dir) elsewhere")


def test_read_only_output_directory_is_one_clear_line(listops_data, tmp_path, monkeypatch):
    out = tmp_path / "readonly" / "run"

    def refuse(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(LRAError) as caught:
        run(compose_train([*tiny_run_overrides(listops_data, out), "task.max_len=32"]))
    assert str(caught.value) == (
        f"cannot write {out}: Read-only file system; free space or point output_dir (hydra.run.dir) elsewhere"
    )
