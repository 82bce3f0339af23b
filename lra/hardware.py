"""The machine a number was measured on, in words: a steps/s or a wall time means nothing without it. Used by the
runs (results.json `hardware`) and the benchmarks (lra.bench.record); neither should import the other."""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path

import torch


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), name)
    return name


def describe(device: torch.device, processes: int = 1) -> str:
    """E.g. `4 x NVIDIA H100 80GB HBM3` or `cpu, 2 threads x 1 process: Intel(R) Xeon(R) ...`."""
    name = device_name(device)
    if device.type == "cuda":
        return f"{processes} x {name}"
    threads = torch.get_num_threads()
    return f"cpu, {threads} thread{'s' * (threads != 1)} x {processes} process{'es' * (processes != 1)}: {name}"
