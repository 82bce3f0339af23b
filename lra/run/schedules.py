"""Learning-rate schedules of the recipes: multipliers of the base lr as functions of the optimizer step (0-based)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def rsqrt(step: int, warmup: int) -> float:
    """LRA's `linear_warmup * rsqrt_decay`: min(1, s/w) / sqrt(max(s, w)), applied to the base lr (0.05), with the
    release's 0-based step (lr 0 at the first update)."""
    return min(1.0, step / max(warmup, 1)) / math.sqrt(max(step, warmup, 1))


def cosine(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1, then cosine decay to 0 at `total` steps (Image, Pathfinder, Path-X)."""
    s = step + 1
    if s < warmup:
        return s / warmup
    progress = min(1.0, (s - warmup) / max(total - warmup, 1))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_release(step: int, warmup: int, total: int) -> float:
    """The release's `linear_warmup * cosine_decay` as its Image/Pathfinder configs set it (steps_per_cycle =
    total): min(1, s/w) * max(0, cos-decay of (s - w) / total), s counted from 0, so the first step has lr 0 and
    the decay never reaches 0 within the run (it divides by `total`, not `total - warmup`).
    lra_benchmarks/utils/train_utils.py create_learning_rate_scheduler; docs/reference.md#cosine-schedule."""
    progress = max(0.0, (step - warmup) / max(total, 1))
    return min(1.0, step / max(warmup, 1)) * max(0.0, 0.5 * (1.0 + math.cos(math.pi * (progress % 1.0))))


def constant(step: int, warmup: int) -> float:
    """Linear warmup, then the base lr unchanged."""
    return min(1.0, (step + 1) / max(warmup, 1))


# The small PyTorch protocols (Nystromformer, Skyformer, xformers) call torch's OneCycleLR with
# anneal_strategy="linear" and its defaults: start at lr / 25, rise linearly to lr at step `warmup` - 1, fall linearly
# to lr / 25e4 at the last step, and move Adam's beta1 the other way (0.95 -> 0.85 -> 0.95; cycle_momentum).
# docs/reference.md#small-protocols.
ONE_CYCLE_START = 1 / 25
ONE_CYCLE_END = ONE_CYCLE_START / 1e4
BETA1_HIGH, BETA1_LOW = 0.95, 0.85


def linear_phase(step: int, warmup: int, total: int) -> tuple[float, bool]:
    """(progress through the phase in [0, 1], whether in the warm-up phase) of OneCycleLR's two phases."""
    peak = max(warmup - 1, 1)
    if step <= peak:
        return step / peak, True
    return min(1.0, (step - peak) / max(total - 1 - peak, 1)), False


def linear(step: int, warmup: int, total: int) -> float:
    """OneCycleLR's linear lr as a multiplier of the base lr (clamped at the end value after `total`)."""
    progress, warming = linear_phase(step, warmup, total)
    if warming:
        return ONE_CYCLE_START + progress * (1 - ONE_CYCLE_START)
    return 1 + progress * (ONE_CYCLE_END - 1)


def linear_beta1(step: int, warmup: int, total: int) -> float:
    progress, warming = linear_phase(step, warmup, total)
    if warming:
        return BETA1_HIGH + progress * (BETA1_LOW - BETA1_HIGH)
    return BETA1_LOW + progress * (BETA1_HIGH - BETA1_LOW)


class LinearOneCycle(torch.optim.lr_scheduler.LambdaLR):
    """`linear` for the lr, and beta1 cycled with it: what OneCycleLR computes, but one multiplier per step like
    the other schedules (so a resume with a longer max_steps holds the end value instead of raising)."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total
        super().__init__(optimizer, lambda step: linear(step, warmup, total))

    def get_lr(self) -> list[float]:
        beta1 = linear_beta1(self.last_epoch, self.warmup, self.total)
        for group in self.optimizer.param_groups:
            group["betas"] = (beta1, group["betas"][1])
        return super().get_lr()


SCHEDULES = ("rsqrt", "cosine", "cosine_release", "constant", "linear")


def scheduler(optimizer: torch.optim.Optimizer, name: str, warmup: int, total: int):
    """The lr scheduler of `optim.schedule`, stepped once per optimizer step."""
    if name == "linear":
        return LinearOneCycle(optimizer, warmup, total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(name, warmup, total))


def schedule(name: str, warmup: int, total: int) -> Callable[[int], float]:
    if name == "rsqrt":
        return lambda step: rsqrt(step, warmup)
    if name == "cosine":
        return lambda step: cosine(step, warmup, total)
    if name == "cosine_release":
        return lambda step: cosine_release(step, warmup, total)
    if name == "constant":
        return lambda step: constant(step, warmup)
    if name == "linear":
        return lambda step: linear(step, warmup, total)
    raise ValueError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {name!r}")
