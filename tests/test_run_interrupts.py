"""A run interrupted at the exact points that used to matter (inside the step before a validation, inside the
validation, right after its checkpoint is written) and resumed equals the uninterrupted run: results.json, the final
weights and the metrics log. The interruption is raised from a hook at that point, never timed with sleeps."""

import csv
import json
import os
import signal
from pathlib import Path

import pytest
import torch

from lra.run.checkpoints import AtomicCheckpointIO
from lra.run.config import compose_train
from lra.run.preemption import Preempted
from lra.run.task import LRATask
from lra.run.train import run
from tests.helpers import tiny_run_overrides

STEPS, EVERY, AT = 12, 4, 8  # validation and checkpoints every 4 steps; interrupted at step 8


class Killed(BaseException):
    """Stands for SIGKILL: nothing after the point runs (BaseException: no handler of ours catches it)."""


def overrides(data: Path, out: Path) -> list[str]:
    return [
        *tiny_run_overrides(data, out, steps=STEPS), f"trainer.val_check_interval={EVERY}", f"checkpoint_every={EVERY}",
        "trainer.deterministic=true", "trainer.log_every_n_steps=1", "model.dropout=0.1", "optim.schedule=constant",
    ]


def outcome(out: Path) -> tuple[dict, dict, list[tuple]]:
    results = json.loads((out / "results.json").read_text())
    weights = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    with open(out / "csv" / "metrics.csv", newline="") as file:
        rows = [(r["step"], r["val/acc"], r["val/loss"]) for r in csv.DictReader(file) if r.get("val/acc")]
    keep = ("best_val_acc", "test_acc", "test_acc_last", "step", "config_hash")
    return {k: results[k] for k in keep}, weights, rows


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    from tests.task_fixtures import write_listops

    root = tmp_path_factory.mktemp("straight")
    data = write_listops(root / "data" / "listops-1000").parent
    run(compose_train(overrides(data, root / "run")))
    return data, outcome(root / "run")


def sigterm_in_training_step(monkeypatch) -> None:
    """SIGTERM while step AT trains: the step ends, validation AT follows; the save must come after it."""
    original = LRATask.training_step

    def step(self, batch, batch_idx):
        if self.global_step == AT - 1 and not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, batch, batch_idx)

    fired: list = []
    monkeypatch.setattr(LRATask, "training_step", step)


def sigterm_in_validation(monkeypatch) -> None:
    """SIGTERM inside validation AT: it must run to its end before the save, not stop half way."""
    original = LRATask.validation_step

    def step(self, batch, batch_idx):
        if self.global_step == AT and not self.trainer.sanity_checking and not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, batch, batch_idx)

    fired: list = []
    monkeypatch.setattr(LRATask, "validation_step", step)


def kill_after_first_checkpoint_of_step(monkeypatch) -> None:
    """SIGKILL right after the first checkpoint file of step AT is whole on disk."""
    original = AtomicCheckpointIO.save_checkpoint

    def save(self, checkpoint, path, storage_options=None):
        original(self, checkpoint, path, storage_options)
        if f"step{AT}" in Path(path).name:
            raise Killed(path)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", save)


@pytest.mark.parametrize("interrupt", [sigterm_in_training_step, sigterm_in_validation,
                                       kill_after_first_checkpoint_of_step])
def test_a_run_interrupted_at_a_validation_boundary_resumes_to_the_same_end(straight, tmp_path, interrupt):
    data, (results, weights, val_rows) = straight
    out = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch:
        interrupt(patch)
        with pytest.raises((Preempted, Killed)):
            run(compose_train(overrides(data, out)))
    assert not (out / "results.json").exists()
    run(compose_train([*overrides(data, out), "resume=auto"]))
    got_results, got_weights, got_rows = outcome(out)
    assert got_rows == val_rows  # validation AT ran once, whole, and counted
    assert got_results == results
    for name, tensor in weights.items():
        assert torch.equal(got_weights[name], tensor), name


def test_sigusr1_under_slurm_without_scontrol_saves_and_says_how_to_resume(listops_data, tmp_path, monkeypatch):
    """Containers often run SLURM jobs with no scontrol on PATH: the requeue fails, the run still stops cleanly."""
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    original = LRATask.training_step

    def step(self, batch, batch_idx):
        if self.global_step == 2:
            os.kill(os.getpid(), signal.SIGUSR1)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(LRATask, "training_step", step)
    out = tmp_path / "run"
    with pytest.raises(Preempted) as caught:
        run(compose_train([*tiny_run_overrides(listops_data, out, steps=20), "trainer.val_check_interval=10"]))
    last = out / "checkpoints" / "last.ckpt"
    assert str(caught.value) == (
        f"stopped by SIGUSR1 at step 3: checkpoint {last}; could not requeue SLURM job 4242 (scontrol: No such file "
        f"or directory); resume with the same command plus hydra.run.dir={out} resume=auto"
    )
    assert caught.value.signum == signal.SIGUSR1
    assert torch.load(last, weights_only=True)["global_step"] == 3
