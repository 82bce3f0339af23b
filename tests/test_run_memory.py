"""Peak memory in results.json is each run's own, also when several runs share one process (a Hydra multirun)."""

import json
import types

import pytest
import torch

import lra.run.callbacks
import lra.run.train
from lra.run.callbacks import CLEAR_REFS, Throughput
from lra.run.config import compose_train
from lra.run.train import run
from tests.helpers import tiny_run_overrides

HOG_MB = 300


class Hog(Throughput):
    """Throughput that also holds HOG_MB of touched memory through training, then frees it."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.held = torch.ones(HOG_MB * 2**20 // 4)  # float32, every page written

    def on_train_end(self, trainer, pl_module) -> None:
        del self.held


def clear_refs_writable() -> bool:
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def test_runs_in_one_process_record_their_own_peak(listops_data, tmp_path, monkeypatch):
    if not clear_refs_writable():
        pytest.skip(f"{CLEAR_REFS} is not writable here: the CPU peak cannot be reset between runs")
    meters = iter([Hog, Throughput])
    monkeypatch.setattr(lra.run.train, "Throughput", lambda: next(meters)())
    peaks = []
    for name in ("big", "small"):
        out = tmp_path / name
        run(compose_train([*tiny_run_overrides(listops_data, out), "task.max_len=32"]))
        results = json.loads((out / "results.json").read_text())
        assert results["memory_method"] == "vmhwm_reset"
        peaks.append(results["peak_memory_mb"])
    big, small = peaks
    # A lifetime peak (ru_maxrss) would give the second run the first one's peak.
    assert big - small > HOG_MB / 2, f"peaks {big:.0f} MB then {small:.0f} MB"


def test_unresettable_peak_is_recorded_as_lifetime(tmp_path, monkeypatch):
    monkeypatch.setattr(lra.run.callbacks, "CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    meter = Throughput()
    module = types.SimpleNamespace(device=torch.device("cpu"))
    trainer = types.SimpleNamespace(ckpt_path=None, world_size=1)
    meter.on_fit_start(trainer, module)
    meter.on_fit_end(trainer, module)
    assert meter.memory_method == "ru_maxrss_lifetime" and meter.peak_memory_mb > 0
