"""Peak memory of one measured configuration, and the caps that keep a too-large CPU run from taking the machine."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import resource
import sys
from pathlib import Path

import torch

from lra.proc_status import proc_status_kb


class PeakMemory:
    """Peak memory of what runs between `start()` and `peak_mb()`, beyond what was allocated at `start()`.

    CUDA: `max_memory_allocated`. CPU: the process's peak resident set size (Linux VmHWM, reset at `start()` through
    /proc/self/clear_refs) minus its resident size at `start()`, after handing freed heap memory back to the system
    (malloc_trim), so that memory kept from earlier work does not hide new allocations. Most reliable in a fresh
    process, which is how `--isolate` (the CPU default) runs each configuration.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0

    def method(self, isolated: bool) -> str:
        if self.device.type == "cuda":
            return "cuda max_memory_allocated minus allocated at start"
        where = "a fresh subprocess per configuration" if isolated else "in-process (one process for all)"
        return f"cpu peak RSS (VmHWM) minus RSS before the model was built, {where}"

    def start(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
        self.base = (proc_status_kb("VmRSS") or 0) * 1024

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
        peak_kb = proc_status_kb("VmHWM")
        if peak_kb is None:  # not Linux: the lifetime peak, meaningful in a fresh process only
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == "darwin" else 1)
        return max(0.0, (peak_kb * 1024 - self.base) / 2**20)


def limit_address_space(gigabytes: float | None) -> None:
    """Cap this process's address space `gigabytes` above its current size, so a too-large CPU run fails with an
    allocation error (recorded as OOM) instead of pushing the machine into swap or the OOM killer."""
    size_kb = proc_status_kb("VmSize")
    if gigabytes and size_kb:
        limit = size_kb * 1024 + int(gigabytes * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def default_mem_limit_gb() -> float | None:
    """80% of the memory available now (Linux), so one isolated CPU run cannot take the machine down."""
    available_kb = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available_kb = int(line.split()[1])
    return 0.8 * available_kb / 2**20 if available_kb else None
