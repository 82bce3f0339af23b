"""One process at a time: an advisory lock between the jobs that share a data directory (or one run directory).

Several jobs that start on a fresh cache at once (a SLURM array, the joblib launcher, every DDP rank) would each do
the same preparation; holding this lock, one does it and the others wait, then find it done. The lock only saves
work: what it guards is published atomically (lra.atomic), so a file system without locks (some NFS and Lustre
mounts) still gives correct results, only computed more than once. The kernel drops the lock when its holder exits,
a crash or SIGKILL included, so a dead holder never blocks the others.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lra.errors import LRAError

# flock(2) errors that mean "this file system does not lock", not "someone holds it".
NO_LOCKS = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)


@contextmanager
def exclusive(path: str | os.PathLike, waiting: str) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing and kept: removing it would let a second
    holder in); prints `waiting` to stderr once if another process holds it, then waits for it."""
    fd = os.open(Path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as err:
            if err.errno not in NO_LOCKS:
                raise
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def exclusive_or_refuse(path: str | os.PathLike, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` for the block, or raise LRAError(`busy`) at once if another live
    process holds it (the kernel drops a dead holder's lock, so a crash never leaves it taken)."""
    fd = os.open(Path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LRAError(busy) from None
        except OSError as err:
            if err.errno not in NO_LOCKS:
                raise
        yield
    finally:
        os.close(fd)
