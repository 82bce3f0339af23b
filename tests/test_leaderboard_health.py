"""The health-check table reads validation accuracy at fixed steps from a run's own CSV log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lra.errors import LRAError
from lra.leaderboard.health import main, table, val_curve

HEADER = "epoch,lr-AdamW,step,train/acc,train/loss,val/acc,val/loss\n"


def write_run(run: Path, rows: list[str] | None, **results) -> Path:
    """A run directory: its CSV log (none if `rows` is None) and a results.json of `results`."""
    (run / "csv").mkdir(parents=True)
    if rows is not None:
        (run / "csv" / "metrics.csv").write_text(HEADER + "".join(rows))
    (run / "results.json").write_text(json.dumps({"steps_per_s": 1.25, **results}))
    return run


def test_validation_n_is_read_at_step_n(tmp_path: Path):
    # Lightning logs the validation after 1000 training steps at global step 999; train rows carry no val/acc.
    run = write_run(tmp_path / "fnet-seed1", [",1e-4,999,,,,\n", "0,,999,,,0.25,2.1\n", "0,,1999,,,0.375,1.9\n",
                                              "0,,1999,0.5,1.7,,\n"])
    assert val_curve(run / "csv" / "metrics.csv") == {1000: 0.25, 2000: 0.375}
    lines = table([run], [1000, 2000, 3000]).splitlines()
    assert lines[0] == "| run | val % @1k | val % @2k | val % @3k | best val % | steps/s | wall | hardware |"
    assert lines[2] == "| fnet-seed1 | 25.00 | 37.50 | - | - | 1.25 | - | - |"


def test_every_run_has_a_row_with_its_wall_time_and_machine(tmp_path: Path):
    # results/*/*: labels below the common parent; a run without a log keeps its row; pretraining time beside.
    logged = write_run(tmp_path / "nystrom" / "fnet-seed0", ["0,,999,,,0.3,2.0\n"], best_val_acc=0.39,
                       train_wall_s=4020.0, hardware="cpu: X",
                       pretrain={"steps": 5000, "wall_s": 8700.0})
    unlogged = write_run(tmp_path / "s4" / "lru-seed0", None, best_val_acc=0.4, steps_per_s=float("nan"))
    lines = table([logged, unlogged], [1000, 2000]).splitlines()
    assert lines[2] == "| nystrom/fnet-seed0 | 30.00 | - | 39.00 | 1.25 | 67 min (+145 min pretraining) | cpu: X |"
    assert lines[3] == "| s4/lru-seed0 | no log | no log | 40.00 | - | - | - |"


def test_a_run_without_a_log_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "leaves out csv" in out


def test_an_unreadable_row_names_its_line(tmp_path: Path):
    run = write_run(tmp_path / "r", ["0,,999,,,0.25,2.1\n", "0,,oops,,,0.5,2.0\n"])
    with pytest.raises(LRAError, match=r"metrics.csv:3"):
        val_curve(run / "csv" / "metrics.csv")


def test_a_damaged_results_file_is_one_line_and_record_text_cannot_break_the_table(tmp_path: Path, capsys):
    run = write_run(tmp_path / "r", ["0,,999,,,0.25,2.1\n"], hardware="a | b")
    assert table([run], [1000]).splitlines()[2].endswith("| a \\| b |")
    (run / "results.json").write_text("{oops")
    assert main([str(run)]) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "results.json: unreadable" in out
