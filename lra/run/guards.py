"""Numeric guards: a non-finite loss or gradient stops the run with one line, or the step is skipped."""

from __future__ import annotations

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
    """Checks the loss and every gradient before each optimizer step.

    `stop` raises before the bad update reaches the weights, so the checkpoints on disk stay good; `skip` drops the
    update (gradients cleared), counts it and logs `train/skipped_steps`. Under fp16 mixed precision the gradient
    scaler already skips overflowing steps, so only the loss is checked there.
    """

    def __init__(self, mode: str, checkpoint_dir: Path) -> None:
        if mode not in MODES:
            raise LRAError(f"on_nonfinite={mode!r} is not an option; use one of: {', '.join(MODES)}")
        self.mode = mode
        self.checkpoint_dir = checkpoint_dir
        self.loss: torch.Tensor | None = None
        self.skipped = 0

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        self.loss = loss.detach()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        checks = [torch.isfinite(self.loss).all()] if self.loss is not None else []
        if grads and not str(trainer.precision).startswith("16"):
            checks += [torch.isfinite(g).all() for g in grads]
        if not checks or torch.stack(checks).all():
            return
        if self.mode == "skip":
            optimizer.zero_grad(set_to_none=True)
            self.skipped += 1
            pl_module.log("train/skipped_steps", float(self.skipped), on_step=True)
            return
        last = newest_checkpoint(self.checkpoint_dir) if self.checkpoint_dir.is_dir() else None
        raise NonFiniteError(
            f"non-finite training at step {trainer.global_step + 1}: loss {self.loss.item():.4g}, first non-finite "
            f"parameter {first_nonfinite(pl_module)}; last good checkpoint: {last or 'none yet'}; "
            "lower optim.lr, set trainer.gradient_clip_val, or pass on_nonfinite=skip"
        )
