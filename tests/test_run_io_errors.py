"""I/O failures are one line naming the path and what to do: a full disk under the checkpoints or the token cache
(real ENOSPC from /dev/full, behind the writers), checkpoints already written left intact."""

import builtins
from pathlib import Path

import numpy as np
import pytest
import torch

import lra.run.checkpoints as checkpoints
from lra.errors import LRAError
from lra.run.checkpoints import readable
from lra.run.config import compose_train
from lra.run.train import run
from tests.helpers import tiny_run_overrides

FULL = Path("/dev/full")  # every write fails with ENOSPC

pytestmark = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")


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
