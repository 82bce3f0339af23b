"""The health-check table reads validation accuracy at fixed steps from a run's own CSV log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lra.errors import LRAError
from lra.leaderboard.health import main, table, val_curve

HEADER = "epoch,lr-AdamW,step,train/acc,train/loss,val/acc,val/loss\n"


def write_run(run: Path, rows: list[str], steps_per_s: float = 1.25) -> Path:
    (run / "csv").mkdir(parents=True)
    (run / "csv" / "metrics.csv").write_text(HEADER + "".join(rows))
    (run / "results.json").write_text(json.dumps({"steps_per_s": steps_per_s}))
    return run


def test_validation_n_is_read_at_step_n(tmp_path: Path):
    # Lightning logs the validation after 1000 training steps at global step 999; train rows carry no val/acc.
    run = write_run(tmp_path / "fnet-seed1", [",1e-4,999,,,,\n", "0,,999,,,0.25,2.1\n", "0,,1999,,,0.375,1.9\n",
                                              "0,,1999,0.5,1.7,,\n"])
    assert val_curve(run / "csv" / "metrics.csv") == {1000: 0.25, 2000: 0.375}
    lines = table([run], [1000, 2000, 3000]).splitlines()
    assert lines[0] == "| run | val % @1k | val % @2k | val % @3k | steps/s |"
    assert lines[2] == "| fnet-seed1 | 25.00 | 37.50 | - | 1.25 |"


def test_a_run_without_a_log_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "logger=csv" in out


def test_an_unreadable_row_names_its_line(tmp_path: Path):
    run = write_run(tmp_path / "r", ["0,,999,,,0.25,2.1\n", "0,,oops,,,0.5,2.0\n"])
    with pytest.raises(LRAError, match=r"metrics.csv:3"):
        val_curve(run / "csv" / "metrics.csv")
