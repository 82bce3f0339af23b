"""Pre-emption: SIGTERM or SIGUSR1 (SLURM's warning signal) -> checkpoint, stop cleanly, requeue on SLURM."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import torch
from pytorch_lightning.callbacks import Checkpoint

from lra.run.checkpoints import validates_after_this_step
from lra.run.rundir import resume_override
from lra.signals import STOP_SIGNALS


class Preempted(Exception):
    """The run stopped on a signal after saving a checkpoint; the message says how to resume."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class Preemption(Checkpoint):
    """Records the signal; saves `last.ckpt` at the end of the current training step, or of the validation that
    follows it, and stops the trainer.

    A `Checkpoint` so that Lightning orders it after the ModelCheckpoints: its save after validation N then holds
    their record of validation N (a save before it would resume as "validation N done" and drop its score)."""

    def __init__(self, checkpoint: Path, requeue: bool, run_dir: Path | None = None) -> None:
        self.checkpoint = checkpoint
        self.requeue = requeue
        self.run_dir = checkpoint.parent.parent if run_dir is None else run_dir  # what the resume command names
        self.signum: int | None = None
        self.saved_at: int | None = None
        self.requeue_failed: str | None = None
        self.previous: dict[int, object] = {}

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            self.previous[signum] = signal.signal(signum, self.notice)

    def uninstall(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def notice(self, signum: int, frame) -> None:
        self.signum = signum

    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning composes its own SIGTERM handler with ours when fit starts; it would stop a validation half
        # way (its state then resumes with a partial score). From here on the signal only marks a save point.
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.notice)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.saved_at is not None:
            return
        if trainer.world_size > 1:  # saving is a collective: every rank decides on the same signal
            self.signum = agreed_signal(self.signum, pl_module.device)
        if self.signum is None or validates_after_this_step(trainer):
            return  # a validation follows this step: save after it (on_validation_end)
        self.save(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.saved_at is not None or trainer.sanity_checking:
            return
        if trainer.world_size > 1:  # a signal that came during validation, on some ranks only
            self.signum = agreed_signal(self.signum, pl_module.device)
        if self.signum is not None:
            self.save(trainer)

    def interrupted(self, trainer) -> None:
        """Lightning raised its SIGTERMException before a step ended (the signal came between our check and its
        own, at the next step's start): the state is the last complete step's, so save it here instead. Under DDP
        Lightning raises it on every rank (it broadcasts rank 0's SIGTERM), so every rank saves, not only those
        the signal reached."""
        if self.saved_at is None:
            self.signum = self.signum or signal.SIGTERM
            self.save(trainer)

    def save(self, trainer) -> None:
        trainer.save_checkpoint(self.checkpoint)
        self.saved_at = trainer.global_step
        trainer.should_stop = True
        job = os.environ.get("SLURM_JOB_ID")
        if self.requeue and job and trainer.is_global_zero:
            self.requeue_failed = requeue_job(job)

    def stopped(self) -> Preempted | None:
        if self.saved_at is None:
            return None
        name = signal.Signals(self.signum).name
        job = os.environ.get("SLURM_JOB_ID")
        resume = f"resume with the same command plus {resume_override(self.run_dir)} resume=auto"
        if self.requeue and job and self.requeue_failed is None:
            how = f"requeued SLURM job {job}; it resumes by itself when it restarts"
        elif self.requeue and job:
            how = f"could not requeue SLURM job {job} ({self.requeue_failed}); {resume}"
        else:
            how = resume
        return Preempted(f"stopped by {name} at step {self.saved_at}: checkpoint {self.checkpoint}; {how}", self.signum)


def requeue_job(job: str) -> str | None:
    """`scontrol requeue JOB`; None when it worked, else why not (no scontrol in a container is common)."""
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, check=False)
    except OSError as err:
        return f"scontrol: {err.strerror}"
    if done.returncode != 0:
        return f"scontrol exited {done.returncode}: {(done.stderr or done.stdout).strip()[:200]}"
    return None


def agreed_signal(signum: int | None, device: torch.device) -> int | None:
    """The signal any rank saw (the highest number if several), on every rank: saving is a collective, so all ranks
    must decide together, and SLURM may signal some ranks only. One all-reduce of one number per step."""
    flag = torch.tensor([signum or 0], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    agreed = int(flag.item())
    return agreed or None
