"""The prepared GPU script (lra.bench.gpu) end to end at tiny sizes on this machine, so it cannot rot before a GPU
run: every part runs (or says why it skipped), the files land in the run directory, one summary table prints."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lra.bench.gpu import main
from tests.helpers import ROOT


@pytest.mark.timeout(900)  # about a minute on 2 idle cores; several on a machine shared with training runs
def test_smoke_runs_every_part_and_writes_the_run_directory(tmp_path):
    out = tmp_path / "gpu"
    proc = subprocess.run([sys.executable, "-m", "lra.bench.gpu", "--smoke", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)  # ~1 min idle; a loaded machine: far more
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert {"device", "device_name", "torch", "cuda", "gpus"} <= set(run) and run["smoke"] is True
    assert "matmul_max_len" in json.loads((out / "fourier_threshold.json").read_text())
    speed = json.loads((out / "speed.json").read_text())["results"]
    assert {r["model"] for r in speed} == {"fnet", "transformer", "performer", "linformer", "nystromformer", "s4d",
                                           "lru"}
    assert {r["precision"] for r in speed} == {"bf16", "32"}
    assert next(r for r in speed if r["model"] == "transformer")["sdpa_kernel"]
    for name in ("fnet", "transformer"):
        assert json.loads((out / "listops" / name / "results.json").read_text())["step"] == 2
    summary = (out / "summary.txt").read_text()
    assert summary in proc.stdout and "listops transformer" in summary
    if "cuda" not in run["device"]:
        assert "skipped the GPU tests: no CUDA device" in summary


def test_a_spent_budget_skips_and_says_so(tmp_path, capsys):
    assert main(["--smoke", "--parts", "bc", "--budget", "b=0,c=0", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "skipped mixing L=16 and longer: budget spent" in out
    assert "skipped fnet L=32 bf16: budget spent" in out
    assert "skipped part a: not in --parts" in out and "skipped part d: not in --parts" in out


def test_a_bad_budget_is_one_line(capsys):
    assert main(["--smoke", "--budget", "z=3"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --budget 'z=3': give part=seconds for parts a, b, c, d (e.g. c=900)"
    )
