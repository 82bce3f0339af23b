"""Resuming a long run (lra.run.checkpoints, lra.run.preemption): exact resume after SIGKILL, pre-emption signals,
checkpoints on disk that are corrupt, from another configuration, or in a reused run directory."""

import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from lra.errors import LRAError
from lra.run.checkpoints import AtomicCheckpointIO, newest_checkpoint
from lra.run.config import compose_train
from lra.run.loggers import build_loggers
from lra.run.preemption import Preemption
from lra.run.train import run
from tests.helpers import start, tiny_run_overrides
from tests.task_fixtures import write_listops


# --- exact resume and pre-emption (real processes, real signals) ---------------------------------------------------
def long_run_args(data_dir: Path, out: Path) -> list[str]:
    """Several epochs with dropout, validation and periodic checkpoints: every piece of state matters on resume."""
    return [
        *tiny_run_overrides(data_dir, out, steps=240), "trainer.val_check_interval=20", "checkpoint_every=10",
        "trainer.deterministic=true", "task.max_len=32", "task.batch_size=12", "model.dropout=0.1",
    ]


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
    assert "dataloader is not resumable" not in err  # Lightning's warning, wrong here: the sampler resumes exactly
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


def test_sigterm_to_every_process_of_the_job_still_saves(uninterrupted, tmp_path):
    """scancel signals the whole job: the DataLoader workers ignore it and the main process saves and stops."""
    data, _ = uninterrupted
    out = tmp_path / "scancelled"
    proc = start([*long_run_args(data, out), "task.num_workers=2"])
    wait_for_checkpoint(proc, out / "checkpoints")
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("stopped by SIGTERM at step ")
    assert "killed by signal" not in err and (out / "checkpoints" / "last.ckpt").is_file()


def test_sigkill_then_resume_continues_one_wandb_run(listops_data, tmp_path):
    """A requeued or resumed run logs to the W&B run it started (offline: every start's folder has the stored id)."""
    out = tmp_path / "run"
    args = [*tiny_run_overrides(listops_data, out, steps=400), "logger=wandb", "checkpoint_every=5", "task.max_len=32",
            f"hydra.run.dir={out}"]
    proc = start(args, wandb="offline")
    wait_for_checkpoint(proc, out / "checkpoints")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = start([*args, "trainer.max_steps=20", "resume=auto"], wandb="offline")
    stdout, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert "resuming from" in stdout
    starts = sorted((out / "wandb").glob("offline-run-*"))
    assert len(starts) == 2, starts
    ids = {folder.name.rsplit("-", 1)[1] for folder in starts}
    assert len(ids) == 1, f"one W&B run id for the whole run, not {ids}"
    assert ids == {(out / "wandb_id").read_text().strip()}


def test_each_run_directory_keeps_its_own_wandb_id(tmp_path):
    cfg = compose_train(["logger=wandb", f"output_dir={tmp_path}"]).logger
    first, again, other = (build_loggers(cfg, tmp_path / name)[0] for name in ("a", "a", "b"))
    assert first._wandb_init["resume"] == "allow"
    assert first.version == again.version == (tmp_path / "a" / "wandb_id").read_text().strip()
    assert other.version != first.version and len(other.version) == 8
    named = compose_train(["logger=wandb", f"output_dir={tmp_path}", "+logger.wandb.id=mine"]).logger
    assert build_loggers(named, tmp_path / "c")[0].version == "mine"  # an id in the config wins


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

    def broken(obj, file):  # the checkpoint IO writes through a file object (lra.run.checkpoints)
        file.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": 1}, "global_step": 2}, target)
    assert torch.load(target, weights_only=False)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"]


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


def test_sigterm_caught_by_lightning_first_still_saves_and_stops(tmp_path):
    """The signal can land between our end-of-step check and Lightning's own at the next step's start; Lightning
    then raises SIGTERMException and our callback never sees a step end: `interrupted` saves instead. It saves on a
    rank the signal did not reach too: Lightning raises the exception on every rank (it broadcasts rank 0's
    SIGTERM) and saving is a collective."""
    saved = []

    class Trainer:
        global_step, is_global_zero, should_stop = 7, True, False

        def save_checkpoint(self, path):
            saved.append(path)

    preemption = Preemption(tmp_path / "checkpoints" / "last.ckpt", requeue=False)
    trainer = Trainer()
    assert preemption.stopped() is None
    preemption.interrupted(trainer)  # this rank saw no signal: Lightning's exception says another did
    preemption.interrupted(trainer)  # once only
    assert saved == [tmp_path / "checkpoints" / "last.ckpt"] and trainer.should_stop
    assert str(preemption.stopped()).startswith("stopped by SIGTERM at step 7: checkpoint ")
