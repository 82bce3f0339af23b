"""Numeric guards: a non-finite loss or gradient stops the run with one line, or the step is skipped."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytorch_lightning as pl
import torch

from lra.errors import LRAError
from lra.run.checkpoints import newest_checkpoint

MODES = ("stop", "skip")


class NonFiniteError(LRAError):
    """Training produced NaN or inf."""


def first_nonfinite(module: torch.nn.Module) -> str | None:
    """Name of the first parameter whose value, else whose gradient, is not finite."""
    named = list(module.named_parameters())
    for name, p in named:
        if not torch.isfinite(p).all():
            return f"{name} (value)"
    for name, p in named:
        if p.grad is not None and not torch.isfinite(p.grad).all():
            return f"{name} (gradient)"
    return None


class NonFiniteGuard(pl.Callback):
    """Checks the loss and every gradient before each optimizer step, on the device.

    `stop` raises without waiting for the device: the check's result is copied to the host asynchronously and read
    once it has arrived (on CPU at once, before the update; on a GPU usually at the next step), and always before a
    checkpoint is written, so the checkpoints on disk stay good. `skip` must know before the update, so it waits for
    the result every step (one host sync, as the fp16 gradient scaler's own skip does); it drops the update
    (gradients cleared), counts it and logs `train/skipped_steps`. Under fp16 mixed precision the gradient scaler
    already skips overflowing steps, so only the loss is checked there.
    """

    def __init__(self, mode: str, checkpoint_dir: Path) -> None:
        if mode not in MODES:
            raise LRAError(f"on_nonfinite={mode!r} is not an option; use one of: {', '.join(MODES)}")
        self.mode = mode
        self.checkpoint_dir = checkpoint_dir
        self.loss: torch.Tensor | None = None
        self.skipped = 0
        self.pending: deque[Pending] = deque()  # stop mode: results not yet read, oldest first

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        self.loss = loss.detach()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        checks = [torch.isfinite(self.loss).all()] if self.loss is not None else []
        if grads and not str(trainer.precision).startswith("16"):
            checks += [torch.isfinite(g).all() for g in grads]
        if not checks:
            return
        finite = torch.stack(checks).all()
        if self.mode == "skip":
            if not bool(finite):  # the one host sync: skipping needs the answer before the update
                optimizer.zero_grad(set_to_none=True)
                self.skipped += 1
                pl_module.log("train/skipped_steps", float(self.skipped), on_step=True)
            return
        self.pending.append(Pending(trainer.global_step + 1, finite, self.loss))
        self.read(trainer, pl_module, wait=False)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self.read(trainer, pl_module, wait=True)  # a bad step never reaches a checkpoint

    def read(self, trainer, pl_module, wait: bool) -> None:
        """Reads the results that have arrived (all of them if `wait`); raises at the first non-finite one."""
        while self.pending and (wait or self.pending[0].arrived()):
            done = self.pending.popleft()
            if not done.value():
                self.fail(trainer, pl_module, done)

    def fail(self, trainer, pl_module, bad: Pending) -> None:
        last = newest_checkpoint(self.checkpoint_dir) if self.checkpoint_dir.is_dir() else None
        loss = "n/a" if bad.loss is None else f"{bad.loss.item():.4g}"
        raise NonFiniteError(
            f"non-finite training at step {bad.step}: loss {loss}, first non-finite "
            f"parameter {first_nonfinite(pl_module)}; last good checkpoint: {last or 'none yet'}; "
            "lower optim.lr, set trainer.gradient_clip_val, or pass on_nonfinite=skip"
        )


class Pending:
    """A step's finiteness on its way to the host: on a GPU a non-blocking copy to pinned memory and an event."""

    def __init__(self, step: int, finite: torch.Tensor, loss: torch.Tensor | None) -> None:
        self.step = step
        self.loss = loss
        self.event = None
        if finite.device.type == "cuda":
            self.host = torch.empty((), dtype=torch.bool, pin_memory=True)
            self.host.copy_(finite, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.host = finite

    def arrived(self) -> bool:
        return self.event is None or self.event.query()

    def value(self) -> bool:
        if self.event is not None:
            self.event.synchronize()
        return bool(self.host)
