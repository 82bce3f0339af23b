"""Runs stuck at chance (LRA's most reported failure, on Pathfinder and Path-X: loss at ln 2 all run long).

A validation is at chance when val/acc is at most the majority class's share of the validation labels plus
`chance.margin` and val/loss at least the label entropy minus `chance.margin` (nats): the model predicts no better
than the label prior. `chance.patience` such validations in a row flag the run with one warning line; it counts as
stuck if it is still at chance when training ends. `on_chance=restart` stops a flagged run and trains again with the
next seed, at most `chance.max_restarts` times (lra.run.train.run).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.trainer.states import TrainerFn

from lra.atomic import write_text
from lra.errors import LRAError

MODES = ("warn", "restart")


def check_chance(cfg: DictConfig) -> None:
    """One line naming the key for a bad `on_chance` or `chance.*` value, before any data is read."""
    if cfg.on_chance not in MODES:
        raise LRAError(f"on_chance={cfg.on_chance!r} is not an option; use one of: {', '.join(MODES)}")
    for key in ("patience", "max_restarts"):
        value = cfg.chance[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise LRAError(f"chance.{key}={value} must be a non-negative integer (chance.patience=0: never check)")
    margin = cfg.chance.margin
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 <= margin < 1:
        raise LRAError(f"chance.margin={margin} must be in [0, 1)")


def prior(counts: torch.Tensor) -> tuple[float, float]:
    """The majority class's share and the entropy (nats) of a label histogram."""
    p = counts.double() / counts.sum()
    nonzero = p[p > 0]
    return float(p.max()), float(-(nonzero * nonzero.log()).sum())


def at_chance(acc: float, loss: float, majority: float, entropy: float, margin: float) -> bool:
    return acc <= majority + margin and loss >= entropy - margin


class ChanceWatch(pl.Callback):
    """Counts validations in a row at chance; on the `patience`-th warns once and, if `stop`, ends the fit.

    Needs the LightningModule's `val_label_counts` (the validation labels' histogram, lra.run.task.LRATask). Its
    count is callback state, so a resumed run continues it."""

    def __init__(self, patience: int, margin: float, stop: bool = False, then: str = "continuing") -> None:
        self.patience = patience
        self.margin = margin
        self.stop = stop
        self.then = then  # what the warning says happens next
        self.streak = 0
        self.warned = False

    @property
    def stuck(self) -> bool:
        return self.patience > 0 and self.streak >= self.patience

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.patience == 0 or trainer.state.fn != TrainerFn.FITTING:
            return  # only fit's validations count, not a later trainer.validate
        metrics = trainer.callback_metrics
        counts = getattr(pl_module, "val_label_counts", None)
        if "val/acc" not in metrics or "val/loss" not in metrics or counts is None or counts.sum() == 0:
            return
        counts = trainer.strategy.reduce(counts.clone(), reduce_op="sum")
        majority, entropy = prior(counts)
        acc, loss = float(metrics["val/acc"]), float(metrics["val/loss"])
        self.streak = self.streak + 1 if at_chance(acc, loss, majority, entropy, self.margin) else 0
        if not self.stuck or self.warned:
            return
        self.warned = True
        if trainer.is_global_zero:
            print(
                f"warning: stuck at chance at step {trainer.global_step}: {self.streak} validations in a row with "
                f"val acc {acc:.4f} (majority class {majority:.4f}) and val loss {loss:.4f} (label entropy "
                f"{entropy:.4f}); {self.then}",
                file=sys.stderr,
            )
        if self.stop:
            trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"streak": self.streak, "warned": self.warned}

    def load_state_dict(self, state_dict: dict) -> None:
        self.streak = int(state_dict["streak"])
        self.warned = bool(state_dict["warned"])


# --- restarts: the same run directory, the next seed ---------------------------------------------------------------
RESTART = "restart.json"  # {first_seed, seed, restarts}: which attempt the directory's checkpoints belong to


def attempt(directory: Path, first_seed: int, resuming: bool) -> tuple[int, int]:
    """(seed, restarts) to train with: a resumed run continues the attempt its restart.json names."""
    path = directory / RESTART
    if not resuming or not path.is_file():
        return first_seed, 0
    try:
        state = json.loads(path.read_text())
        seed, restarts, first = int(state["seed"]), int(state["restarts"]), int(state["first_seed"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise LRAError(f"{path} is unreadable ({err}); delete it to resume with seed={first_seed}") from err
    if first != first_seed:
        raise LRAError(f"{path} belongs to seed={first}, this run has seed={first_seed}; pass seed={first}")
    return seed, restarts


def begin_restart(directory: Path, checkpoints: Path, first_seed: int, stuck_seed: int, restarts: int) -> None:
    """Keep the stuck attempt's checkpoints as `stuck-seed<N>/` and record the attempt that follows."""
    kept = directory / f"stuck-seed{stuck_seed}"
    if kept.exists():
        shutil.rmtree(kept)
    if checkpoints.exists():
        checkpoints.rename(kept)
    record = {"first_seed": first_seed, "seed": stuck_seed + 1, "restarts": restarts}
    write_text(directory / RESTART, json.dumps(record) + "\n")
