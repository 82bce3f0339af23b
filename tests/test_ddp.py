"""DDP over gloo with 2 CPU processes, through the real entry point: a killed run resumes where it stopped on every
rank, Luna trains and its test accuracy counts each example once, and a signal that reaches one rank stops every rank
at the same step (no hang)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lra.probe import locality
from tests.helpers import ROOT, TINY_MODEL
from tests.task_fixtures import write_listops

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")

STEPS = 24  # 64 train rows / (2 ranks x 4) = 8 batches per epoch: the kill lands mid-epoch, the run spans 3 epochs


def ddp_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", f"data_dir={data}", f"output_dir={out}",
        f"hydra.run.dir={out}", "logger=csv", f"trainer.max_steps={STEPS}", "trainer.val_check_interval=8",
        "checkpoint_every=3", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "task.batch_size=4", "task.num_workers=0", "task.max_len=32", "model.dropout=0.1", *TINY_MODEL, *extra,
    ]


def launch(args: list[str]) -> subprocess.Popen:
    """`python train.py ARGS` in its own session, so the whole DDP job (Lightning starts rank 1 itself) is killable."""
    return subprocess.Popen(
        [sys.executable, "train.py", *args], cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled",
                                                         "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the DDP run hung (ranks disagree?): {err[-3000:]}")
    return out, err


def wait_for(proc: subprocess.Popen, path_glob: tuple[Path, str], timeout: float = 240) -> None:
    directory, pattern = path_glob
    deadline = time.monotonic() + timeout
    while not list(directory.glob(pattern)):
        assert proc.poll() is None, f"run ended early: {proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.005)


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    # 17 evaluation rows: the two ranks' shards differ in size, as they do on real splits.
    sizes = (("train", 64), ("val", 17), ("test", 17))
    return write_listops(root / "data" / "listops-1000", sizes=sizes).parent


def test_killed_ddp_run_resumes_on_every_rank_to_the_uninterrupted_weights(data, tmp_path):
    straight = tmp_path / "straight"
    _, err = finish(launch(ddp_args(data, straight)))
    assert (straight / "results.json").exists(), err[-3000:]

    out = tmp_path / "killed"
    proc = launch(ddp_args(data, out))
    wait_for(proc, (out / "checkpoints", "step3.ckpt"))  # step 3: mid-epoch
    os.killpg(proc.pid, signal.SIGKILL)  # every rank, as a node failure or scancel does
    proc.wait()
    assert not (out / "results.json").exists()

    resumed = launch([*ddp_args(data, out), "resume=auto"])
    stdout, err = finish(resumed)
    assert resumed.returncode == 0, err[-3000:]
    assert "resuming from" in stdout
    assert json.loads((out / "results.json").read_text())["step"] == STEPS
    expected, got = weights(straight), weights(out)
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name


def test_luna_trains_under_ddp_and_tests_every_example_once(data, tmp_path):
    out = tmp_path / "luna"
    proc = launch(ddp_args(data, out, "model=luna", "model.n_layers=3", "trainer.max_steps=3",
                           "trainer.val_check_interval=3"))
    _, err = finish(proc)
    assert proc.returncode == 0, err[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["step"] == 3
    # The same weights tested in one process over the 17 test rows: a repeated row (Lightning's padded shards)
    # would make the DDP accuracy a fraction of 18.
    cfg = locality.run_config(out, str(data))
    batches = locality.test_batches(cfg)  # one process: every row once
    model = locality.load_model(cfg, out / "checkpoints" / "last.ckpt")
    correct = locality.accuracy(model, batches, torch.device("cpu")) * 17
    assert sum(len(batch["label"]) for batch in batches) == 17
    assert 0 < round(correct) < 17, "a test that cannot tell 17 rows from 18 needs other weights or data"
    assert results["test_acc_last"] == pytest.approx(correct / 17, abs=1e-6)


def child_pid(pid: int) -> int:
    """Rank 1: the child process that runs train.py (the launcher may briefly run others first, e.g. git)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            try:
                if b"train.py" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return int(child)
            except OSError:  # it ended between the two reads
                continue
        time.sleep(0.05)
    raise AssertionError("Lightning did not start rank 1")


def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step(data, tmp_path):
    out = tmp_path / "usr1"
    proc = launch(ddp_args(data, out, "trainer.max_steps=100000", "requeue=false"))
    rank1 = child_pid(proc.pid)
    wait_for(proc, (out / "checkpoints", "step3.ckpt"))
    os.kill(rank1, signal.SIGUSR1)  # SLURM's warning, seen by rank 1 only
    _, err = finish(proc, timeout=120)
    assert proc.returncode == 128 + signal.SIGUSR1, err[-3000:]
    last = out / "checkpoints" / "last.ckpt"
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert f"stopped by SIGUSR1 at step {step}" in err
