"""Long-run safety: exact resume after SIGKILL, pre-emption signals, numeric guards, config checks, disk errors."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import lra.train
from lra.checkpoints import AtomicCheckpointIO, newest_checkpoint
from lra.errors import LRAError
from lra.guards import NonFiniteError
from lra.train import run
from lra.validate import check_choices
from tests.conftest import CONF, compose_train, tiny_run_overrides, write_listops

ROOT = Path(__file__).resolve().parent.parent


# --- exact resume and pre-emption (real processes, real signals) ---------------------------------------------------
def long_run_args(data_dir: Path, out: Path) -> list[str]:
    """Several epochs with dropout, validation and periodic checkpoints: every piece of state matters on resume."""
    return [
        *tiny_run_overrides(data_dir, out, steps=240), "trainer.val_check_interval=20", "checkpoint_every=10",
        "trainer.deterministic=true", "task.max_len=32", "task.batch_size=12", "model.dropout=0.1",
    ]


def start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "train.py", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_checkpoint(proc: subprocess.Popen, directory: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not list(directory.glob("step*.ckpt")):
        assert proc.poll() is None, f"run ended before its first checkpoint: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.01)


def final_state(out: Path) -> tuple[dict, dict]:
    results = json.loads((out / "results.json").read_text())
    weights = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    return results, weights


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, tuple[dict, dict]]:
    root = tmp_path_factory.mktemp("long")
    data = write_listops(root / "data" / "listops-1000", sizes=(("train", 100), ("val", 24), ("test", 24))).parent
    proc = start(long_run_args(data, root / "straight"))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return data, final_state(root / "straight")


def test_sigkill_then_resume_equals_the_uninterrupted_run(uninterrupted, tmp_path):
    data, (expected, expected_weights) = uninterrupted
    out = tmp_path / "killed"
    proc = start(long_run_args(data, out))
    wait_for_checkpoint(proc, out / "checkpoints")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "results.json").exists()

    resumed = start([*long_run_args(data, out), "resume=auto"])
    stdout, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert "resuming from" in stdout
    results, weights = final_state(out)
    for key in ("best_val_acc", "test_acc", "test_acc_last", "step", "config_hash"):
        assert results[key] == expected[key], key
    for name, tensor in expected_weights.items():
        assert torch.allclose(weights[name], tensor, atol=1e-6), name


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(uninterrupted, tmp_path):
    data, _ = uninterrupted
    out = tmp_path / "preempted"
    proc = start(long_run_args(data, out))
    wait_for_checkpoint(proc, out / "checkpoints")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    last = out / "checkpoints" / "last.ckpt"
    step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < step < 240
    assert err.strip().splitlines()[-1] == (
        f"stopped by SIGTERM at step {step}: checkpoint {last}; "
        f"resume with the same command plus hydra.run.dir={out} resume=auto"
    )
    assert "Traceback" not in err


# --- checkpoints on disk --------------------------------------------------------------------------------------------
def test_corrupt_newest_checkpoint_falls_back_to_the_previous(listops_data, tmp_path, capsys):
    out = tmp_path / "run"
    run(compose_train([*tiny_run_overrides(listops_data, out, steps=6), "checkpoint_every=2", "task.max_len=32"]))
    directory = out / "checkpoints"
    (directory / "last.ckpt").write_bytes((directory / "last.ckpt").read_bytes()[:100])  # truncated
    found = newest_checkpoint(directory)
    assert found is not None and found.name == "step6.ckpt"
    assert f"warning: checkpoint {directory / 'last.ckpt'} is unreadable" in capsys.readouterr().err


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "c.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {}, "global_step": 1}, target)

    def broken(obj, path):
        Path(path).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": 1}, "global_step": 2}, target)
    assert torch.load(target, weights_only=False)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"]


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


def test_resuming_into_a_different_configuration_is_refused(listops_data, tmp_path):
    out = tmp_path / "run"
    run(compose_train([*tiny_run_overrides(listops_data, out), "task.max_len=32"]))
    changed = compose_train([*tiny_run_overrides(listops_data, out, steps=8), "task.max_len=32", "optim.lr=0.2",
                             "ckpt_path=last"])
    with pytest.raises(LRAError, match=r"^the checkpoint was written by a different configuration \(fingerprint "):
        run(changed)


def test_a_run_directory_with_checkpoints_is_not_reused_without_resume(listops_data, tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    out = tmp_path / "run"
    overrides = [*tiny_run_overrides(listops_data, out), "task.max_len=32"]
    run(compose_train(overrides))
    newest = newest_checkpoint(out / "checkpoints")
    with pytest.raises(LRAError) as caught:
        run(compose_train(overrides))
    assert str(caught.value) == (
        f"{out / 'checkpoints'} already holds checkpoints ({newest.name}); pass resume=auto to continue that run, "
        "or choose a new hydra.run.dir"
    )


def test_a_requeued_slurm_job_resumes_by_itself(listops_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    run(compose_train([*tiny_run_overrides(listops_data, out, steps=4), "task.max_len=32"]))
    newest = newest_checkpoint(out / "checkpoints")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    run(compose_train([*tiny_run_overrides(listops_data, out, steps=6), "task.max_len=32"]))
    assert f"SLURM requeued this job (SLURM_RESTART_COUNT=1): resuming from {newest}" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["step"] == 6


# --- numeric guards -------------------------------------------------------------------------------------------------
def poison_at(monkeypatch, step: int, target: str) -> None:
    """Make the model produce NaN at one training step: a weight (`weight`) or only that step's loss (`loss`)."""
    build = lra.train.build_model

    def build_poisoned(model_cfg, task_cfg):
        model = build(model_cfg, task_cfg)
        calls = {"n": 0}

        def hook(module, args, output):
            if not module.training:
                return output
            calls["n"] += 1
            if calls["n"] != step:
                return output
            if target == "weight":
                with torch.no_grad():
                    module.head[2].weight.fill_(float("nan"))
                return module.head(module.encoder(args[0]["input_ids"], args[0]["mask"]))
            return output * float("nan")

        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(lra.train, "build_model", build_poisoned)


def test_nonfinite_stops_with_one_line_and_keeps_the_last_good_checkpoint(listops_data, tmp_path, monkeypatch):
    poison_at(monkeypatch, step=5, target="weight")
    out = tmp_path / "run"
    cfg = compose_train([*tiny_run_overrides(listops_data, out, steps=8), "checkpoint_every=2", "task.max_len=32"])
    with pytest.raises(NonFiniteError) as caught:
        run(cfg)
    last_good = out / "checkpoints" / "step4.ckpt"
    assert str(caught.value) == (
        f"non-finite training at step 5: loss nan, first non-finite parameter model.head.2.weight (value); "
        f"last good checkpoint: {last_good}; lower optim.lr, set trainer.gradient_clip_val, or pass on_nonfinite=skip"
    )
    state = torch.load(last_good, map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.isfinite(t).all() for t in state.values())


def test_nonfinite_skip_counts_and_continues(listops_data, tmp_path, monkeypatch):
    poison_at(monkeypatch, step=3, target="loss")
    out = tmp_path / "run"
    run(compose_train([*tiny_run_overrides(listops_data, out, steps=6), "on_nonfinite=skip", "task.max_len=32"]))
    results = json.loads((out / "results.json").read_text())
    assert results["skipped_steps"] == 1 and results["step"] == 6
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.isfinite(t).all() for t in state.values())


# --- configuration checks, before any data is touched ---------------------------------------------------------------
def test_unknown_task_or_model_lists_the_available_names():
    with pytest.raises(LRAError) as caught:
        check_choices(["task=listopz"], CONF)
    tasks = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
    assert str(caught.value) == f"task=listopz is not available; choose one of: {', '.join(tasks)}"
    with pytest.raises(LRAError, match=r"^model=fnett is not available; choose one of: .*fnet, .*transformer"):
        check_choices(["-m", "model=fnet,fnett", "seed=1"], CONF)
    check_choices(["task=listops", "model=fnet,transformer", "seed=0,1"], CONF)


def test_unknown_task_from_the_command_line_is_one_line():
    proc = subprocess.run(
        [sys.executable, "train.py", "model=nosuchmodel"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: model=nosuchmodel is not available; choose one of: ")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "overrides, line",
    [
        (["model=transformer", "model.d_model=50", "model.n_heads=4"],
         "model.d_model=50 is not divisible by model.n_heads=4, which Attention needs; change one of them"),
        (["model.n_layers=0"], "model.n_layers=0 must be a positive integer"),
        (["model.d_model=-8"], "model.d_model=-8 must be a positive integer"),
        (["task.batch_size=0"], "task.batch_size=0 must be a positive integer"),
        (["trainer.max_steps=-1"], "trainer.max_steps=-1 must be a positive integer"),
        (["model.dropout=1.5"], "model.dropout=1.5 must be in [0, 1)"),
        (["model.mixer=nope"], None),
    ],
)
def test_config_rules_fail_before_any_data_is_touched(tmp_path, overrides, line):
    cfg = compose_train([*tiny_run_overrides(tmp_path / "no-data-here", tmp_path / "out"), *overrides])
    with pytest.raises(LRAError) as caught:
        run(cfg)  # the data directory does not exist: only a config check can fail first
    if line is None:
        assert str(caught.value).startswith("model.mixer='nope' is not a mixer; available: ")
    else:
        assert str(caught.value) == line


def test_head_free_mixers_need_no_divisible_width(listops_data, tmp_path):
    cfg = compose_train([*tiny_run_overrides(listops_data, tmp_path / "out"), "model=fnet", "model.d_model=30",
                         "task.max_len=32"])
    run(cfg)


def test_batch_larger_than_the_dataset(listops_data, tmp_path):
    cfg = compose_train([*tiny_run_overrides(listops_data, tmp_path / "out"), "task.batch_size=65"])
    with pytest.raises(LRAError) as caught:
        run(cfg)
    assert str(caught.value) == (
        f"task.batch_size=65 is larger than the training split (64 examples under {listops_data / 'listops-1000'}); "
        "lower task.batch_size"
    )


def test_max_len_smaller_than_the_data(listops_data, tmp_path):
    cfg = compose_train([*tiny_run_overrides(listops_data, tmp_path / "out"), "task.max_len=4"])
    with pytest.raises(LRAError, match=r"basic_train.tsv:\d+: \d+ tokens exceed task.max_len=4; raise task.max_len"):
        run(cfg)
