"""Checkpoints are data (lra.run.checkpoints): a crafted pickle is refused before it runs, a checkpoint from before
format 2 is refused with what to do, and what RunState stores loads with weights_only=True."""

import os
import random
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from lra.errors import LRAError
from lra.run.checkpoints import FORMAT, newest_checkpoint, numpy_state, readable, set_numpy_state, verified
from lra.run.config import compose_train
from lra.run.train import run
from tests.helpers import tiny_run_overrides


class Payload:
    """Unpickled, calls os.system: the shell creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def crafted(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "global_step": 1, "lra": {"format": FORMAT}, "x": Payload(marker)}, path)
    return path


def test_a_crafted_ckpt_path_is_refused_and_never_runs(listops_data, tmp_path):
    marker = tmp_path / "pwned"
    evil = crafted(tmp_path / "evil.ckpt", marker)
    cfg = compose_train([*tiny_run_overrides(listops_data, tmp_path / "run"), "task.max_len=32", f"ckpt_path={evil}"])
    with pytest.raises(LRAError) as caught:
        run(cfg)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"checkpoint {evil} is refused: loading it would call ")
    assert "system" in message
    assert not marker.exists()


def test_a_crafted_checkpoint_in_a_run_directory_is_refused_under_resume_auto(listops_data, tmp_path):
    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    evil = crafted(out / "checkpoints" / "step2.ckpt", marker)
    cfg = compose_train([*tiny_run_overrides(listops_data, out), "task.max_len=32", "resume=auto"])
    with pytest.raises(LRAError, match=rf"^checkpoint {evil} is refused: loading it would call "):
        run(cfg)
    assert not marker.exists()
    assert not (out / "results.json").exists()


def test_a_checkpoint_from_before_format_2_is_refused_with_what_to_do(tmp_path):
    old = tmp_path / "old.ckpt"  # what RunState wrote before: numpy's state as an ndarray
    torch.save({"state_dict": {}, "global_step": 1, "lra": {"numpy_rng": np.random.get_state()}}, old)
    with pytest.raises(LRAError, match=rf"^checkpoint {old} was written before checkpoints became plain data"):
        readable(old)
    plain = tmp_path / "plain.ckpt"  # loads as data, but carries no format mark
    torch.save({"state_dict": {}, "global_step": 1}, plain)
    with pytest.raises(LRAError, match=rf"^checkpoint {plain} has no lra.format={FORMAT} .*start a new run directory"):
        readable(plain)


def test_a_truncated_checkpoint_is_unreadable_not_refused(tmp_path):
    path = tmp_path / "t.ckpt"
    torch.save({"state_dict": {}, "global_step": 1, "lra": {"format": FORMAT}}, path)
    assert readable(path) is None
    path.write_bytes(path.read_bytes()[:50])
    assert readable(path) is not None


def test_run_checkpoints_load_weights_only_and_restore_numpy(listops_data, tmp_path):
    out = tmp_path / "run"
    run(compose_train([*tiny_run_overrides(listops_data, out), "task.max_len=32"]))
    for path in (out / "checkpoints").glob("*.ckpt"):
        assert torch.load(path, map_location="cpu", weights_only=True)["lra"]["format"] == FORMAT
    np.random.seed(3)
    random.seed(3)
    saved = numpy_state()
    expected = np.random.rand(4)
    np.random.seed(4)
    set_numpy_state(torch.load(_save(tmp_path / "np.pt", saved), weights_only=True))
    assert np.array_equal(np.random.rand(4), expected)


def _save(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def test_a_checkpoint_damaged_in_place_at_the_same_size_is_caught(tmp_path, capsys):
    """torch.load never checks the zip CRCs: a flipped byte in a tensor would load as other weights."""
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    weights = {"w": torch.arange(256, dtype=torch.float32)}
    older, newer = directory / "step2.ckpt", directory / "last.ckpt"
    for path in (older, newer):
        torch.save({"state_dict": weights, "global_step": 2, "lra": {"format": FORMAT}}, path)
    data = bytearray(newer.read_bytes())
    offset = bytes(data).index(torch.arange(256, dtype=torch.float32).numpy().tobytes()) + 400
    data[offset] ^= 0xFF
    newer.write_bytes(bytes(data))
    os.utime(older, ns=(1, 1))  # the damaged one is the newest
    assert torch.load(newer, weights_only=True)["state_dict"]["w"][100] != 100  # loads silently, other weights
    assert readable(newer).startswith("CRC check failed for ")
    assert newest_checkpoint(directory) == older
    assert f"warning: checkpoint {newer} is unreadable (CRC check failed" in capsys.readouterr().err
    with pytest.raises(LRAError, match=rf"^checkpoint {newer} is damaged \(CRC check failed"):
        verified(newer)
