"""The signals that ask a run to save and stop, declared once: the run's pre-emption handler catches them
(lra.run.preemption), its DataLoader workers ignore them (lra.data.base)."""

from __future__ import annotations

import signal

# SIGTERM: `kill`, SLURM's scancel and its time limit; SIGUSR1: SLURM's warning ahead of the limit (`--signal`).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def leave_stop_signals_to_main(worker_id: int) -> None:
    """A DataLoader worker's init: scancel (and `kill -- -PGID`) signals every process of the job, and a worker
    that died of it would take the main process down ("DataLoader worker ... killed by signal") before it saves.
    The worker ignores them; it still ends with the main process (PyTorch's worker watchdog)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
