"""Training-speed and memory measurement, the numbers LRA's efficiency table reports."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import resource
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from lra.hardware import describe
from lra.proc_status import proc_status_kb

# Writing "5" here resets the process's VmHWM (peak resident set size) to its current RSS (Linux only).
CLEAR_REFS = Path("/proc/self/clear_refs")


class Throughput(pl.Callback):
    """Training steps/s over the steps after `warmup` (validation time excluded), and this fit's peak memory.

    Several runs can share one process (a Hydra multirun), so the memory peak is reset when fit starts and read when
    it ends: CUDA `max_memory_allocated`; on CPU the process's peak RSS since the reset (Linux VmHWM after
    /proc/self/clear_refs), which counts what the process already held at the start (the run's own model and data,
    and whatever an earlier run left resident). Where the reset is refused (not Linux, some containers) it is the
    process's lifetime peak (`ru_maxrss`), and `memory_method` says so.

    On a GPU a step is timed by CUDA events on the stream (never a synchronize, which would stall every step), read
    once they have completed.

    The fit's wall time (training and validation, as a user waits for it) travels in every checkpoint, so a run
    resumed after a pre-emption reports the sum of its segments, each step counted once: not the time it was stopped,
    nor what a stopped segment ran past its last checkpoint (redone, and counted, in the next). A resume from a
    checkpoint that does not carry it reports None rather than one segment's time.
    """

    def __init__(self, warmup: int = 5) -> None:
        self.warmup = warmup
        self.steps = 0
        self.seconds = 0.0
        self.started = 0.0
        self.memory_method: str | None = None
        self.peak_memory_mb: float | None = None
        self.start_event = None
        self.timed: list[tuple] = []  # CUDA: (start, end) event pairs not yet read
        self.earlier_wall_s: float | None = 0.0  # the wall time of the segments before this one
        self.restored = False
        self.fit_started: float | None = None
        self.fit_ended: float | None = None
        self.hardware = "unknown"

    def state_dict(self) -> dict:
        wall = self.wall_s()
        return {} if wall is None else {"wall_s": wall}

    def load_state_dict(self, state_dict: dict) -> None:
        self.earlier_wall_s = float(state_dict["wall_s"])
        self.restored = True

    def wall_s(self) -> float | None:
        """The fit's wall seconds so far, all segments together."""
        if self.earlier_wall_s is None or self.fit_started is None:
            return None
        end = self.fit_ended if self.fit_ended is not None else time.monotonic()
        return self.earlier_wall_s + end - self.fit_started

    def on_fit_start(self, trainer, pl_module) -> None:
        # Lightning restores callback states before this hook: a resume that restored none has no earlier time.
        self.fit_started, self.fit_ended = time.monotonic(), None
        if trainer.ckpt_path is not None and not self.restored:
            self.earlier_wall_s = None
        device = pl_module.device
        self.hardware = describe(device, trainer.world_size)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            self.memory_method = "cuda_max_allocated"
            return
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand back heap an earlier run freed, so it is not counted
        try:
            CLEAR_REFS.write_text("5")
            self.memory_method = "vmhwm_reset"
        except OSError:
            self.memory_method = "ru_maxrss_lifetime"

    def on_fit_end(self, trainer, pl_module) -> None:
        self.fit_ended = time.monotonic()
        device = pl_module.device
        if device.type == "cuda":
            self.read_events(wait=True)
            self.peak_memory_mb = torch.cuda.max_memory_allocated(device) / 2**20
            return
        peak_kb = proc_status_kb("VmHWM") if self.memory_method == "vmhwm_reset" else None
        if peak_kb is None:
            self.memory_method = "ru_maxrss_lifetime"
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            peak_kb = rss // 1024 if sys.platform == "darwin" else rss  # bytes on macOS, KiB on Linux
        self.peak_memory_mb = peak_kb / 2**10

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            self.start_event = torch.cuda.Event(enable_timing=True)
            self.start_event.record()
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        elapsed = time.perf_counter() - self.started
        self.steps += 1
        if self.steps <= self.warmup:
            return
        if pl_module.device.type != "cuda":
            self.seconds += elapsed
            return
        end = torch.cuda.Event(enable_timing=True)
        end.record()
        self.timed.append((self.start_event, end))
        self.read_events(wait=False)

    def read_events(self, wait: bool) -> None:
        """Adds the timed steps whose events have completed (all of them if `wait`)."""
        while self.timed and (wait or self.timed[0][1].query()):
            start, end = self.timed.pop(0)
            end.synchronize()
            self.seconds += start.elapsed_time(end) / 1000

    def steps_per_s(self) -> float | None:
        timed = self.steps - self.warmup
        return timed / self.seconds if timed > 0 and self.seconds > 0 else None
