"""lra.atomic: a file or directory appears whole or not at all, no temporary outlives an error, and several processes
may write one destination at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import lra.atomic
from lra.atomic import atomic_directory, atomic_file, create_text, write_text
from tests.helpers import ROOT

PARTS = 5
# One writer process: fill a temporary, wait until every writer holds a full one, then finish (all rename at once).
WRITER = f"""
import sys, time
from pathlib import Path
from lra.atomic import atomic_directory, write_text
kind, dest, sync, me, writers = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], int(sys.argv[5])

def wait_for_all():
    (sync / me).touch()
    deadline = time.monotonic() + 60
    while len(list(sync.iterdir())) < writers:
        assert time.monotonic() < deadline, "the other writers never came"
        time.sleep(0.005)

if kind == "directory":
    with atomic_directory(dest) as tmp:
        for i in range({PARTS}):
            (tmp / f"part{{i}}").write_text(me * 10000)
        wait_for_all()
else:
    wait_for_all()
    for _ in range(20):
        write_text(dest, me * 100000)
"""


def test_file_appears_whole_on_success(tmp_path):
    target = tmp_path / "a.json"
    with atomic_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".a.json.tmp-")
        tmp.write_text("{}")
        assert not target.exists(), "nothing under the real name before the block ends"
    assert target.read_text() == "{}"
    assert write_text(target, "new") == target and target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt])
def test_file_error_keeps_the_old_file_and_removes_the_temporary(tmp_path, error):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(error):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise error()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_directory_appears_whole_on_success(tmp_path):
    target = tmp_path / "cache" / "train"
    with atomic_directory(target) as tmp:
        assert tmp.is_dir() and tmp.parent == target.parent and tmp.name.startswith(".train.tmp-")
        (tmp / "input_ids.npy").write_bytes(b"x")
        assert not target.exists()
    assert [p.name for p in target.iterdir()] == ["input_ids.npy"]
    assert [p.name for p in target.parent.iterdir()] == ["train"]


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_directory_error_leaves_nothing(tmp_path, error):
    target = tmp_path / "train"
    with pytest.raises(error):
        with atomic_directory(target) as tmp:
            (tmp / "half.npy").write_bytes(b"x")
            raise error()
    assert list(tmp_path.iterdir()) == []


def test_directory_written_by_another_first_is_kept(tmp_path):
    target = tmp_path / "train"
    with atomic_directory(target) as ours:
        (ours / "ours").touch()
        target.mkdir()
        (target / "theirs").touch()  # another process finished first
    assert [p.name for p in target.iterdir()] == ["theirs"]
    assert [p.name for p in tmp_path.iterdir()] == ["train"]


def test_contents_reach_the_disk_before_the_name(tmp_path, monkeypatch):
    """fsync every file, then rename, then fsync the parent: after a machine crash the name never shows unwritten
    contents (a cache marked complete whose arrays are empty)."""
    events = []
    real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace
    monkeypatch.setattr(lra.atomic.os, "fsync",
                        lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))), real_fsync(fd)))
    monkeypatch.setattr(lra.atomic.os, "rename", lambda a, b: (events.append(("rename", str(b))), real_rename(a, b)))
    monkeypatch.setattr(lra.atomic.os, "replace", lambda a, b: (events.append(("rename", str(b))), real_replace(a, b)))
    with atomic_directory(tmp_path / "train") as tmp:
        (tmp / "input_ids.npy").write_bytes(b"x")
    write_text(tmp_path / "results.json", "{}")
    directory = [(kind, Path(name).name.split(".tmp-")[0]) for kind, name in events[:4]]
    assert directory == [("fsync", "input_ids.npy"), ("fsync", ".train"), ("rename", "train"), ("fsync", tmp_path.name)]
    file = [(kind, Path(name).name.split(".tmp-")[0]) for kind, name in events[4:]]
    assert file == [("fsync", ".results.json"), ("rename", "results.json"), ("fsync", tmp_path.name)]


def test_create_text_keeps_the_first_writers_file(tmp_path):
    target = tmp_path / "wandb_id"
    assert create_text(target, "first") == "first"
    assert create_text(target, "second") == "first"
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["wandb_id"]


@pytest.mark.parametrize("kind", ["directory", "file"])
def test_concurrent_writers_all_succeed_and_the_result_is_whole(tmp_path, kind):
    writers = 4
    target, sync = tmp_path / "out" / "split", tmp_path / "sync"
    target.parent.mkdir()
    sync.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, kind, str(target), str(sync), str(i), str(writers)],
                         env=env, stderr=subprocess.PIPE, text=True)
        for i in range(writers)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
    assert [p.name for p in target.parent.iterdir()] == ["split"], "no temporary is left behind"
    if kind == "directory":
        parts = {p.name: p.read_text() for p in target.iterdir()}
        assert sorted(parts) == [f"part{i}" for i in range(PARTS)]
        assert len(set(parts.values())) == 1, "every part comes from the one writer that won"
        assert len(set(next(iter(parts.values())))) == 1
    else:
        text = target.read_text()
        assert len(text) == 100000 and len(set(text)) == 1
