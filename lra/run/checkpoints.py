"""Checkpoints a long run can trust: written atomically, found again by itself, checked before resuming."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

from lra.atomic import atomic_file
from lra.errors import LRAError

LAST = "last"  # checkpoints/last.ckpt: the state at the end of fit or at a pre-emption signal
PERIODIC = "step{step}"  # checkpoints/step<N>.ckpt: every `checkpoint_every` steps, the newest two kept


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temporary name in the same directory, then rename: a kill never leaves half a file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp:
            torch.save(checkpoint, tmp)


def checkpoint_callbacks(directory: Path, every: int) -> tuple[ModelCheckpoint, ModelCheckpoint]:
    """The best-validation checkpoint, and the two newest periodic ones (the resume points)."""
    best = ModelCheckpoint(
        dirpath=directory, filename="best-step{step}", auto_insert_metric_name=False, monitor="val/acc", mode="max"
    )
    periodic = ModelCheckpoint(
        dirpath=directory, filename=PERIODIC, auto_insert_metric_name=False, every_n_train_steps=every,
        monitor="step", mode="max", save_top_k=2,
    )
    return best, periodic


def readable(path: Path) -> str | None:
    """None if `path` loads as a Lightning checkpoint, else why not (truncated, corrupt, not a checkpoint)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any failure to unpickle means the file is unusable
        return f"{type(err).__name__}: {err}".splitlines()[0][:200]
    if not isinstance(state, dict) or "state_dict" not in state or "global_step" not in state:
        return "not a Lightning checkpoint"
    return None


def newest_checkpoint(directory: Path) -> Path | None:
    """The newest readable resume point in `directory`; unreadable ones are reported and passed over."""
    candidates = [p for p in directory.glob("*.ckpt") if p.name == f"{LAST}.ckpt" or p.name.startswith("step")]
    for path in sorted(candidates, key=lambda p: p.stat().st_mtime_ns, reverse=True):
        problem = readable(path)
        if problem is None:
            return path
        print(f"warning: checkpoint {path} is unreadable ({problem}); using the previous good one", file=sys.stderr)
    return None


def resume_path(ckpt_path: str | None, resume: str | None, directory: Path) -> str | None:
    """What fit resumes from: an explicit file, `last` (must exist), or `resume=auto` (if any exists).

    Unset, a run directory that already holds checkpoints is an error (never a silent continuation or overwrite),
    except in a job SLURM requeued, which continues where it stopped."""
    if resume not in (None, "auto"):
        raise LRAError(f"resume={resume!r} is not an option; use resume=auto or leave it unset")
    if ckpt_path not in (None, "last"):
        problem = readable(Path(ckpt_path))
        if problem is not None:
            raise LRAError(f"ckpt_path={ckpt_path} cannot be loaded ({problem})")
        return ckpt_path
    found = newest_checkpoint(directory) if directory.is_dir() else None
    if ckpt_path == "last" and found is None:
        raise LRAError(
            f"ckpt_path=last: no readable checkpoint in {directory}; "
            "pass hydra.run.dir=<the interrupted run's directory>"
        )
    if found is None:
        return None
    if ckpt_path is None and resume is None:
        if not requeued():
            raise LRAError(
                f"{directory} already holds checkpoints ({found.name}); pass resume=auto to continue that run, "
                "or choose a new hydra.run.dir"
            )
        print(f"SLURM requeued this job (SLURM_RESTART_COUNT={os.environ['SLURM_RESTART_COUNT']}): ", end="")
    print(f"resuming from {found}")
    return str(found)


def requeued() -> bool:
    """Whether SLURM restarted this job (after a pre-emption requeue): it then continues its run by itself."""
    count = os.environ.get("SLURM_RESTART_COUNT", "0")
    return count.isdigit() and int(count) > 0


class RunState(pl.Callback):
    """Saves what Lightning does not, so a resumed run continues bit for bit: RNG states and the run's identity.

    The identity (a fingerprint of the configuration) stops a run from silently resuming into a different one.
    """

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["lra"] = {
            "fingerprint": self.fingerprint,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        state = checkpoint.get("lra")
        if state is None:
            return
        if state["fingerprint"] != self.fingerprint:
            raise LRAError(
                f"the checkpoint was written by a different configuration (fingerprint {state['fingerprint']}, "
                f"this run {self.fingerprint}); resume with the original overrides or use a new run directory"
            )
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
