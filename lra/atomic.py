"""Atomic writes: a file or a directory appears whole under its name, or not at all.

Everything is written under a temporary name in the destination's own directory (so the rename never crosses file
systems) and renamed into place when complete; the temporary is removed on any error, an interrupt included. The
temporary names are unique per process and per call, so several processes may write one destination at once: a file
is replaced by each writer in turn, whole every time (`create_text`: the first writer's is kept); a directory goes to
the first writer to finish, and the later ones discard their copy without an error (the copies are equal: what one
process computes, so does the other). Contents are fsynced before the rename and the rename after it, so a crash of
the machine cannot leave a name whose contents were never written (a cache marked complete with empty arrays).
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_name(path: Path) -> Path:
    """`.<name>.tmp-<pid>-<random>` beside `path`: hidden from a reader's globs for real names, and never shared."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


@contextmanager
def atomic_file(path: str | os.PathLike, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write the file at; when the block ends without an error it replaces `path`.

    `durable=False` skips the fsyncs: still whole or absent after a crashed process, not after a crashed machine
    (for the generators' many small images, whose metadata, written durably after them, is what readers trust)."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        if durable:
            fsync(tmp)
        os.replace(tmp, path)
        if durable:
            fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """`path.write_text(text)`, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def create_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> str:
    """Write `text` to `path` whole unless a file already stands there; returns the text at `path` then: ours, or
    the first writer's when several processes create it at once (link(2) never replaces)."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        tmp.write_text(text, encoding=encoding)
        fsync(tmp)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError as err:  # no hard links on this file system: replace, unless it is there by now
            if err.errno not in (errno.EPERM, errno.EOPNOTSUPP):
                raise
            if not path.exists():
                os.replace(tmp, path)
        fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text(encoding=encoding)


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new empty directory to fill; when the block ends without an error it becomes `path`, unless another
    writer's `path` is there by then: that one is kept and ours discarded."""
    path = Path(path)
    tmp = temporary_name(path)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        publish_directory(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish_directory(source: Path, path: Path) -> bool:
    """Rename the finished directory `source` to `path`; False, leaving `source` to the caller to remove, where a
    non-empty directory already stands at `path` (rename(2) replaces an empty one)."""
    for folder, _, files in os.walk(source):
        for name in files:
            fsync(Path(folder) / name)
        fsync(Path(folder))
    try:
        os.rename(source, path)
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY) and path.is_dir():
            return False
        raise
    fsync(path.parent)
    return True


def fsync(path: Path) -> None:
    """Flush a file's or a directory's contents to the disk; a no-op where the file system cannot (EINVAL)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)
