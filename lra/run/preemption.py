"""Pre-emption: SIGTERM or SIGUSR1 (SLURM's warning signal) -> checkpoint, stop cleanly, requeue on SLURM."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytorch_lightning as pl
import torch

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(Exception):
    """The run stopped on a signal after saving a checkpoint; the message says how to resume."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class Preemption(pl.Callback):
    """Records the signal; at the end of the current training step saves `last.ckpt` and stops the trainer."""

    def __init__(self, checkpoint: Path, requeue: bool, run_dir: Path | None = None) -> None:
        self.checkpoint = checkpoint
        self.requeue = requeue
        self.run_dir = checkpoint.parent.parent if run_dir is None else run_dir  # what the resume command names
        self.signum: int | None = None
        self.saved_at: int | None = None
        self.previous: dict[int, object] = {}

    def install(self) -> None:
        for signum in SIGNALS:
            self.previous[signum] = signal.signal(signum, self.notice)

    def uninstall(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def notice(self, signum: int, frame) -> None:
        self.signum = signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.saved_at is not None:
            return
        if trainer.world_size > 1:
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
            subprocess.run(["scontrol", "requeue", job], check=False)

    def stopped(self) -> Preempted | None:
        if self.saved_at is None:
            return None
        name = signal.Signals(self.signum).name
        job = os.environ.get("SLURM_JOB_ID")
        how = (
            f"requeued SLURM job {job}; it resumes by itself when it restarts"
            if self.requeue and job
            else f"resume with the same command plus hydra.run.dir={self.run_dir} resume=auto"
        )
        return Preempted(f"stopped by {name} at step {self.saved_at}: checkpoint {self.checkpoint}; {how}", self.signum)


def agreed_signal(signum: int | None, device: torch.device) -> int | None:
    """The signal any rank saw (the highest number if several), on every rank: saving is a collective, so all ranks
    must decide together, and SLURM may signal some ranks only. One all-reduce of one number per step."""
    flag = torch.tensor([signum or 0], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    agreed = int(flag.item())
    return agreed or None
