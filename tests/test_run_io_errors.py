"""I/O failures are one line naming the path and what to do: a full disk under the checkpoints or the token cache
(real ENOSPC from /dev/full, behind the writers), checkpoints already written left intact."""

import builtins
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lra.run.checkpoints as checkpoints
from lra.data.listops import ListOpsDataModule
from lra.errors import LRAError
from lra.run.checkpoints import readable
from lra.run.config import compose_train
from lra.run.train import run
from tests.helpers import tiny_run_overrides

FULL = Path("/dev/full")  # every write fails with ENOSPC

needs_dev_full = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")


def disk_full_for(monkeypatch, name: str) -> None:
    """Files whose name contains `name` sit on a full disk: opened by Python, their writes fail with ENOSPC; saved
    by torch to a path, torch's own RuntimeError (what it raises on a full disk)."""
    real_open, real_save = builtins.open, torch.save

    def full_open(file, mode="r", *args, **kwargs):
        if name in Path(file).name and "w" in mode:
            return real_open(FULL, mode, *args, **kwargs)
        return real_open(file, mode, *args, **kwargs)

    def save(obj, f, *args, **kwargs):
        if isinstance(f, str | Path) and name in Path(f).name:
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "open", full_open, raising=False)
    monkeypatch.setattr(torch, "save", save)


@needs_dev_full
def test_a_full_disk_under_the_checkpoints_is_one_line_and_keeps_the_earlier_ones(listops_data, tmp_path,
                                                                                    monkeypatch):
    out = tmp_path / "run"
    disk_full_for(monkeypatch, "step4")
    with pytest.raises(LRAError) as caught:
        run(compose_train(tiny_run_overrides(listops_data, out, steps=6)))
    target = out / "checkpoints" / "step4.ckpt"
    assert str(caught.value) == (
        f"cannot write {target}: No space left on device; free space or point output_dir (hydra.run.dir) elsewhere"
    )
    assert readable(out / "checkpoints" / "step2.ckpt") is None
    assert not target.exists() and not list((out / "checkpoints").glob(".*tmp*"))


@needs_dev_full
def test_a_full_disk_under_the_token_cache_is_one_line(listops_data, tmp_path, monkeypatch):
    real_save = np.save

    def save(file, array, *args, **kwargs):
        with builtins.open(FULL, "wb") as full:
            real_save(full, array, *args, **kwargs)

    monkeypatch.setattr(np, "save", save)
    overrides = [*tiny_run_overrides(listops_data, tmp_path / "run"), f"task.cache_dir={tmp_path / 'cache'}"]
    with pytest.raises(LRAError, match=rf"^cannot write the token cache at {tmp_path / 'cache'}/listops-\w+/train: "
                                       r"No space left on device; free space there or set task.cache_dir"):
        run(compose_train(overrides))


# --- the token cache ------------------------------------------------------------------------------------------------
def built(listops_data: Path, tmp_path: Path) -> ListOpsDataModule:
    dm = ListOpsDataModule(str(listops_data / "listops-1000"), str(tmp_path / "cache"), max_len=32, batch_size=4)
    dm.prepare_data()
    return dm


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_damaged_token_cache_is_one_line_saying_to_delete_it(listops_data, tmp_path, damage):
    dm = built(listops_data, tmp_path)
    root = dm.cache_dir()
    array = root / "train" / ("input_ids.npy" if damage == "truncate" else "length.npy")
    size = array.stat().st_size
    if damage == "truncate":
        os.truncate(array, size - 16)
        problem = f"input_ids.npy has {size - 16} bytes, {size} written"
    else:
        array.unlink()
        problem = "length.npy is missing"
    fresh = ListOpsDataModule(str(listops_data / "listops-1000"), str(tmp_path / "cache"), max_len=32, batch_size=4)
    with pytest.raises(LRAError) as caught:
        fresh.setup()
    assert str(caught.value) == (
        f"the token cache {root / 'train'} is damaged ({problem}); delete {root} and run again to rebuild it"
    )


def test_a_damaged_cache_from_before_the_manifest_is_one_line_too(listops_data, tmp_path):
    dm = built(listops_data, tmp_path)
    root = dm.cache_dir()
    (root / "val" / "complete").write_text("")  # as the cache was marked before
    os.truncate(root / "val" / "label.npy", 100)
    with pytest.raises(LRAError, match=rf"^the token cache {root / 'val'} is damaged \(.*\); delete {root} and run"):
        ListOpsDataModule(str(listops_data / "listops-1000"), str(tmp_path / "cache"), max_len=32,
                          batch_size=4).setup()


def test_a_killed_builds_temporaries_are_removed_by_the_next_build(listops_data, tmp_path):
    dm = ListOpsDataModule(str(listops_data / "listops-1000"), str(tmp_path / "cache"), max_len=32, batch_size=4)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    root = dm.cache_dir()
    left = root / f".train.tmp-{int(dead.stdout)}-0badcafe"
    (left / "x").mkdir(parents=True)
    live = root / f".val.tmp-{os.getpid()}-0badcafe"  # a live build's (ours): kept
    live.mkdir()
    dm.prepare_data()
    assert not left.exists() and live.exists()
    assert all((root / split / "complete").exists() for split in ("train", "val", "test"))


def test_sigterm_during_a_cache_build_is_one_line_and_leaves_nothing_partial(listops_data, tmp_path, monkeypatch):
    write_split = ListOpsDataModule.write_split

    def interrupted(self, split, directory):
        write_split(self, split, directory)
        if split == "val":
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(ListOpsDataModule, "write_split", interrupted)
    dm = ListOpsDataModule(str(listops_data / "listops-1000"), str(tmp_path / "cache"), max_len=32, batch_size=4)
    root = dm.cache_dir()
    with pytest.raises(LRAError) as caught:
        dm.prepare_data()
    assert str(caught.value) == (
        f"stopped by SIGTERM while building the token cache {root}; nothing partial was kept: run again to finish it"
    )
    assert sorted(p.name for p in root.iterdir()) == [".lock", "train"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_the_cache_key_does_not_depend_on_how_the_data_path_is_spelled(listops_data, tmp_path, monkeypatch):
    monkeypatch.chdir(listops_data.parent)
    spellings = ["data/listops-1000", "./data/listops-1000", "data/../data/listops-1000",
                 str(listops_data / "listops-1000")]
    keys = {ListOpsDataModule(s, str(tmp_path / "cache"), max_len=32, batch_size=4).cache_key() for s in spellings}
    assert len(keys) == 1
