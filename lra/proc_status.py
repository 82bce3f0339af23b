"""One field of Linux's /proc/self/status, for the peak-memory readings of runs (lra.run.callbacks) and of the
benchmark (lra.bench.memory): both need it, and neither should import the other."""

from __future__ import annotations

from pathlib import Path


def proc_status_kb(field: str) -> int | None:
    """`VmHWM`, `VmRSS`, `VmSize`, ... in kB; None where /proc is missing (not Linux) or has no such field."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None
