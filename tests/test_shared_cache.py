"""Jobs that share a fresh data directory (a SLURM array, the joblib launcher, DDP ranks) start at once: every one
finishes, one builds the token cache while the others wait for it, nothing partial is read, no temporary is left."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from data_prep import listops
from lra.data.base import SPLITS
from lra.data.listops import ListOpsDataModule
from tests.helpers import ROOT
from tests.task_fixtures import write_listops

JOBS = 3
MODES = ("lock", "nolock")
# One job: for each mode, wait until every job is ready, then prepare that mode's cache, each split taking a while (so
# the jobs overlap); every split built is logged. `nolock` plays a file system without locks (flock fails), where the
# atomic publish alone must keep the cache whole. One process does both: the imports take most of the time.
JOB = """
import errno, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import lra.lock
from lra.data.listops import ListOpsDataModule
data, sync, me, jobs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
write_split = ListOpsDataModule.write_split

def no_locks(fd, operation):
    raise OSError(errno.ENOLCK, "No locks available")

for mode in ("lock", "nolock"):
    def slow_write_split(self, split, directory, mode=mode):
        with open(sync / f"{mode}.log", "a") as f:
            f.write(f"{me} {split}\\n")
        time.sleep(0.3)
        write_split(self, split, directory)

    ListOpsDataModule.write_split = slow_write_split
    if mode == "nolock":
        lra.lock.fcntl.flock = no_locks
    (sync / f"{mode}-{me}").touch()
    deadline = time.monotonic() + 120
    while len(list(sync.glob(f"{mode}-*"))) < jobs:
        assert time.monotonic() < deadline, "the other jobs never came"
        time.sleep(0.005)
    dm = ListOpsDataModule(str(data / "listops-1000"), str(data / f".cache-{mode}"), max_len=32, batch_size=4)
    dm.prepare_data()
    dm.setup()
    print(len(dm.datasets["train"]))
"""


def cache_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_jobs_on_a_fresh_cache_all_finish_with_one_whole_cache(tmp_path):
    data, sync = tmp_path / "data", tmp_path / "sync"
    source = write_listops(data / "listops-1000")
    sync.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen([sys.executable, "-c", JOB, str(data), str(sync), str(i), str(JOBS)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(JOBS)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        assert out.split() == ["64", "64"], "every job reads the whole train split, in either mode"
    leftovers = [p for p in data.rglob("*") if ".tmp" in p.name]
    assert not leftovers, f"temporaries left: {leftovers}"

    alone = ListOpsDataModule(str(source), str(tmp_path / "alone"), max_len=32, batch_size=4)
    alone.prepare_data()
    expected = cache_bytes(alone.cache_dir())
    names = [f"{s}/{k}" for s in SPLITS for k in ("complete", "input_ids.npy", "label.npy", "length.npy")]
    assert sorted(expected) == sorted([".lock", *names])
    for mode in MODES:
        shared = ListOpsDataModule(str(source), str(data / f".cache-{mode}"), max_len=32, batch_size=4).cache_dir()
        assert cache_bytes(shared) == expected, f"{mode}: the shared cache equals a single job's"
        built = [line.split() for line in (sync / f"{mode}.log").read_text().splitlines()]
        assert {split for _, split in built} == set(SPLITS)
        if mode == "lock":  # one job built every split, once; the others waited and reused them
            assert len({job for job, _ in built}) == 1 and len(built) == len(SPLITS), built
        else:  # without locks each job builds (the jobs overlap); the first to finish each split wins
            assert len(built) > len(SPLITS), built


def test_a_complete_cache_is_read_without_writing(tmp_path):
    source = write_listops(tmp_path / "listops-1000")
    dm = ListOpsDataModule(str(source), str(tmp_path / "cache"), max_len=32, batch_size=4)
    dm.prepare_data()
    (dm.cache_dir() / ".lock").unlink()
    mode = dm.cache_dir().stat().st_mode
    dm.cache_dir().chmod(0o555)  # a cache shared read-only
    try:
        ListOpsDataModule(str(source), str(tmp_path / "cache"), max_len=32, batch_size=4).prepare_data()
    finally:
        dm.cache_dir().chmod(mode)
    assert not (dm.cache_dir() / ".lock").exists()


def test_generators_writing_one_directory_at_once_all_finish(tmp_path):
    """Each file is replaced whole by each generator in turn; equal arguments give equal bytes, so any order is fine."""
    small = dict(seed=0, min_length=10, max_length=60, max_depth=4, max_args=10, workers=1, progress=False)
    with ThreadPoolExecutor(JOBS) as pool:
        runs = [pool.submit(listops.generate, tmp_path / "shared", 200, 40, 40, **small) for _ in range(JOBS)]
        paths = [run.result(timeout=120) for run in runs]
    alone = listops.generate(tmp_path / "alone", 200, 40, 40, **small)
    assert all(p == paths[0] for p in paths)
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == sorted(p.name for p in alone.values())
    for split, path in alone.items():
        assert paths[0][split].read_bytes() == path.read_bytes(), split
