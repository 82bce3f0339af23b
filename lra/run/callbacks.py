"""Training-speed and memory measurement, the numbers LRA's efficiency table reports."""

from __future__ import annotations

import resource
import sys
import time

import pytorch_lightning as pl
import torch


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated on GPU; the process's peak resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


class Throughput(pl.Callback):
    """Training steps/s over the steps after `warmup` (validation time excluded), and peak memory."""

    def __init__(self, warmup: int = 5) -> None:
        self.warmup = warmup
        self.steps = 0
        self.seconds = 0.0
        self.started = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        elapsed = time.perf_counter() - self.started
        self.steps += 1
        if self.steps > self.warmup:
            self.seconds += elapsed

    def steps_per_s(self) -> float | None:
        timed = self.steps - self.warmup
        return timed / self.seconds if timed > 0 and self.seconds > 0 else None
