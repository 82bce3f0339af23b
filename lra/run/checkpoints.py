"""Checkpoints a long run can trust: written atomically, found again by itself, checked before resuming.

Checkpoints are data: every load is `weights_only=True`, so a crafted file whose pickle would call a function is
refused before anything runs. What we add (RNG states) is stored as tensors and plain Python values for that.
"""

from __future__ import annotations

import os
import pickle
import random
import sys
import zipfile
import zlib
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
# checkpoint["lra"]["format"]: 2 = loadable with weights_only=True. Version 1 (no key) pickled numpy's RNG state.
FORMAT = 2
# What format-1 checkpoints of this project needed beyond torch's safe set: numpy's RNG state array.
FORMAT1_GLOBALS = ("numpy.", "_codecs.encode")


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temporary name in the same directory, then rename: a kill never leaves half a file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Through a Python file: a full disk or a refused write is then an OSError with its errno (torch.save to a
        # path raises a RuntimeError naming neither), given the checkpoint's name for the one-line report.
        with atomic_file(path) as tmp:
            try:
                with open(tmp, "wb") as file:
                    torch.save(checkpoint, file)
            except OSError as err:
                raise OSError(err.errno, err.strerror or str(err), str(path)) from err


def validates_after_this_step(trainer: pl.Trainer) -> bool:
    """Whether Lightning runs validation right after the current training step (asked at its on_train_batch_end):
    the same decision its loop takes, from the same state."""
    loop = trainer.fit_loop
    return bool(loop.epoch_loop._should_check_val_fx(loop._data_fetcher))


class RunCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint whose state survives the run directory being moved or copied, and which replaces a file
    of the same name (a step redone after a resume) instead of writing `-v1` copies beside it.

    Lightning drops the best-checkpoint state of a checkpoint written under another directory (best_model_score
    None: the run then cannot say its best score); the paths are relocated into this directory instead."""

    def __init__(self, **kwargs) -> None:
        super().__init__(enable_version_counter=False, **kwargs)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:
            def moved(path):
                return str(Path(self.dirpath) / Path(path).name) if path else path

            state_dict = {**state_dict, "dirpath": self.dirpath}
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                if key in state_dict:
                    state_dict[key] = moved(state_dict[key])
            if "best_k_models" in state_dict:
                state_dict["best_k_models"] = {moved(k): v for k, v in state_dict["best_k_models"].items()}
        super().load_state_dict(state_dict)


class PeriodicCheckpoint(RunCheckpoint):
    """step<N>.ckpt every `every` training steps, the newest two kept: the resume points.

    At a step that validation follows, the save waits for the end of that validation: Lightning resumes a
    checkpoint of step N as "validation N done", so one taken before it would drop validation N from the run."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        due = self._every_n_train_steps > 0 and trainer.global_step % self._every_n_train_steps == 0
        if due and validates_after_this_step(trainer):
            self._defer_save_until_validation = True  # ModelCheckpoint.on_validation_end saves it
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


def checkpoint_callbacks(directory: Path, every: int) -> tuple[ModelCheckpoint, ModelCheckpoint]:
    """The best-validation checkpoint, and the two newest periodic ones (the resume points)."""
    best = RunCheckpoint(
        dirpath=directory, filename="best-step{step}", auto_insert_metric_name=False, monitor="val/acc", mode="max"
    )
    return best, periodic_checkpoint(directory, every)


def periodic_checkpoint(directory: Path, every: int) -> ModelCheckpoint:
    return PeriodicCheckpoint(
        dirpath=directory, filename=PERIODIC, auto_insert_metric_name=False, every_n_train_steps=every,
        monitor="step", mode="max", save_top_k=2,
    )


class RefusedCheckpoint(LRAError):
    """A checkpoint that is not plain data (it would run code when loaded) or predates FORMAT."""


def refusal(path: Path, err: Exception) -> RefusedCheckpoint | None:
    """Why torch refused `path` under weights_only=True, if it did; None for other failures (truncated, corrupt)."""
    if not isinstance(err, pickle.UnpicklingError) or "Weights only load failed" not in str(err):
        return None
    try:  # lists the pickle's globals without running any of them
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - not a zip checkpoint: still refused, only less precisely
        unsafe = []
    if unsafe and all(name.startswith(FORMAT1_GLOBALS) for name in unsafe):
        return RefusedCheckpoint(
            f"checkpoint {path} was written before checkpoints became plain data (format {FORMAT}) and is not "
            "loaded; start a new run directory (hydra.run.dir=<new dir>) without ckpt_path/resume"
        )
    names = ", ".join(unsafe[:3]) or "a non-data global"
    return RefusedCheckpoint(
        f"checkpoint {path} is refused: loading it would call {names} (not plain data); "
        "use only checkpoints this harness wrote"
    )


def readable(path: Path) -> str | None:
    """None if `path` loads as one of our checkpoints, else why not (truncated, corrupt, not a checkpoint).

    Raises RefusedCheckpoint for a file that is not plain data or predates FORMAT: never skipped silently."""
    if (damage := corrupt_member(path)) is not None:
        return damage
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to unpickle means the file is unusable
        if (refused := refusal(path, err)) is not None:
            raise refused from None
        return f"{type(err).__name__}: {err}".splitlines()[0][:200]
    if not isinstance(state, dict) or "state_dict" not in state or "global_step" not in state:
        return "not a Lightning checkpoint"
    lra = state.get("lra")
    if not isinstance(lra, dict) or lra.get("format") != FORMAT:
        raise RefusedCheckpoint(
            f"checkpoint {path} has no lra.format={FORMAT} (written before this version, or not by this harness); "
            "start a new run directory (hydra.run.dir=<new dir>) without ckpt_path/resume"
        )
    return None


def corrupt_member(path: Path) -> str | None:
    """Why the checkpoint's zip archive fails its CRC check, if it does. torch.load never checks the CRCs, so a
    file damaged in place (same size: a bad disk block, a partial copy over an old file) would load as other
    weights; None for an intact archive or a file that is not a zip (torch.load then says what it is)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile:
        return None
    except (zipfile.LargeZipFile, zlib.error, EOFError, ValueError) as err:
        return f"damaged zip archive ({err})"
    return None if bad is None else f"CRC check failed for {bad}: the file was damaged after it was written"


def verified(path: str | os.PathLike) -> str:
    """`path`, after its CRC check: a checkpoint damaged on disk is one line, never other weights loaded."""
    if (damage := corrupt_member(Path(path))) is not None:
        raise LRAError(f"checkpoint {path} is damaged ({damage}); resume from an earlier one (ckpt_path=<file>)")
    return str(path)


def newest_checkpoint(directory: Path) -> Path | None:
    """The newest readable resume point in `directory`; unreadable ones are reported and passed over."""
    candidates = [p for p in directory.glob("*.ckpt") if p.name == f"{LAST}.ckpt" or p.name.startswith("step")]
    for path in sorted(candidates, key=lambda p: p.stat().st_mtime_ns, reverse=True):
        problem = readable(path)
        if problem is None:
            return path
        print(f"warning: checkpoint {path} is unreadable ({problem}); using the previous good one", file=sys.stderr)
    return None


def resume_path(
    ckpt_path: str | None, resume: str | None, directory: Path, fingerprint: str | None = None
) -> str | None:
    """What fit resumes from: an explicit file, `last` (must exist), or `resume=auto` (if any exists); with
    `fingerprint`, only a checkpoint of this configuration (checked here, before Lightning loads its weights into a
    model of another shape: a state_dict traceback).

    Unset, a run directory that already holds checkpoints is an error (never a silent continuation or overwrite),
    except in a job SLURM requeued, which continues where it stopped."""
    if resume not in (None, "auto"):
        raise LRAError(f"resume={resume!r} is not an option; use resume=auto or leave it unset")
    if ckpt_path not in (None, "last"):
        problem = readable(Path(ckpt_path))
        if problem is not None:
            raise LRAError(f"ckpt_path={ckpt_path} cannot be loaded ({problem})")
        check_fingerprint(Path(ckpt_path), fingerprint)
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
    check_fingerprint(found, fingerprint)
    print(f"resuming from {found}")
    return str(found)


def different_configuration(stored: str, this: str) -> LRAError:
    return LRAError(
        f"the checkpoint was written by a different configuration (fingerprint {stored}, this run {this}); "
        "resume with the original overrides or use a new run directory"
    )


def check_fingerprint(path: Path, fingerprint: str | None) -> None:
    if fingerprint is None:
        return
    stored = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["lra"]["fingerprint"]
    if stored != fingerprint:
        raise different_configuration(stored, fingerprint)


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
        for logger in trainer.loggers:  # the log on disk reaches the checkpoint: a resume continues it whole
            logger.save()
        # Every rank calls this (rank 0 writes): under DDP each rank's RNG states are gathered, since dropout draws
        # differ per rank and the resumed ranks must each continue their own stream.
        states = gather_from_ranks(rng_states())
        checkpoint["lra"] = {"format": FORMAT, "fingerprint": self.fingerprint, **states[0], "rank_rng": states}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        state = checkpoint.get("lra")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise RefusedCheckpoint(
                f"the checkpoint has no lra.format={FORMAT} (written before this version); start a new run directory"
            )
        if state["fingerprint"] != self.fingerprint:
            raise different_configuration(state["fingerprint"], self.fingerprint)
        ranks = state.get("rank_rng") or [state]
        rank = trainer.global_rank
        if len(ranks) != trainer.world_size and rank == 0:
            print(f"warning: the checkpoint holds the RNG states of {len(ranks)} processes and this run has "
                  f"{trainer.world_size}: the random stream (dropout) is not continued bit for bit", file=sys.stderr)
        set_rng_states(ranks[rank] if rank < len(ranks) else ranks[0])


def rng_states() -> dict:
    """This process's RNG states as plain data. CUDA: the current device's only, so a run resumed with a different
    number of visible GPUs still loads."""
    return {
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
        "numpy_rng": numpy_state(),
        "python_rng": random.getstate(),  # (int, tuple of ints, float | None): plain values
    }


def set_rng_states(state: dict) -> None:
    torch.set_rng_state(state["torch_rng"])
    cuda = state["cuda_rng"]
    if isinstance(cuda, list):  # checkpoints before per-rank states kept every visible device's, by index
        device = torch.cuda.current_device() if torch.cuda.is_available() else len(cuda)
        cuda = cuda[device] if device < len(cuda) else None
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda)
    set_numpy_state(state["numpy_rng"])
    random.setstate(state["python_rng"])


def gather_from_ranks(value: dict) -> list[dict]:
    """`value` of every rank, in rank order (a collective under DDP: every rank must call it); [value] otherwise."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def numpy_state() -> dict:
    """numpy's global RNG state as a tensor and plain values (its own form holds an ndarray: not weights-only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def set_numpy_state(state: dict) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"]))
