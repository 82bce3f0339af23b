"""Learning-rate multipliers of the LRA recipes, as functions of the optimizer step (0-based)."""

from __future__ import annotations

import math
from collections.abc import Callable


def rsqrt(step: int, warmup: int) -> float:
    """LRA's `linear_warmup * rsqrt_decay`: min(1, s/w) / sqrt(max(s, w)), applied to the base lr (0.05)."""
    s = step + 1
    return min(1.0, s / max(warmup, 1)) / math.sqrt(max(s, warmup))


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


SCHEDULES = ("rsqrt", "cosine", "cosine_release", "constant")


def schedule(name: str, warmup: int, total: int) -> Callable[[int], float]:
    if name == "rsqrt":
        return lambda step: rsqrt(step, warmup)
    if name == "cosine":
        return lambda step: cosine(step, warmup, total)
    if name == "cosine_release":
        return lambda step: cosine_release(step, warmup, total)
    if name == "constant":
        return lambda step: constant(step, warmup)
    raise ValueError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {name!r}")
