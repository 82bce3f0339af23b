"""Timing that every benchmark shares: device synchronisation, the clocks, median-ready repeats, OOM detection."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import torch

# wall: elapsed time. cpu: this process's CPU time, which other processes on a shared machine do not inflate;
# it sums over threads, so it reads as single-core time with --threads 1.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def autocast(device: torch.device, precision: str):
    if precision == "32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def time_calls(
    fn: Callable[[], None], device: torch.device, warmup: int, repeats: int, calls: int, clock: str = "wall"
) -> list[float]:
    """Seconds per call of `fn`, one number per repeat of `calls` calls, after `warmup` untimed calls."""
    now = CLOCKS[clock]
    for _ in range(warmup):
        fn()
    synchronize(device)
    seconds = []
    for _ in range(repeats):
        start = now()
        for _ in range(calls):
            fn()
        synchronize(device)
        seconds.append((now() - start) / calls)
    return seconds


def is_oom(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
