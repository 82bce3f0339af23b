"""`python -m lra.leaderboard.health <run dirs>`: validation accuracy at fixed steps, from each run's own metrics log.

A user comparing a fresh run against this table can tell within minutes whether it is on track (the S4 repository's
habit of publishing a few early validation points per task). Reads `<run>/csv/metrics.csv` (or `<run>/metrics.csv`,
where a committed run keeps it beside its results.json) and `results.json` (the best validation, steps/s, the wall
time and the machine they were measured on). A run without a metrics log keeps its row, marked `no log`, so that a
table over every run shows which ones cannot be checked.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from lra.errors import LRAError
from lra.leaderboard.render import md

METRICS = ("metrics.csv", "csv/metrics.csv")


def metrics_file(run: Path) -> Path | None:
    return next((run / name for name in METRICS if (run / name).is_file()), None)


def val_curve(path: Path, key: str = "val/acc") -> dict[int, float]:
    """{step: value} of every logged validation; Lightning logs validation N at global step N - 1 (0-based)."""
    curve: dict[int, float] = {}
    with path.open(newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            value = row.get(key) or ""
            if not value:
                continue
            try:
                step, number = int(row["step"]) + 1, float(value)
            except (KeyError, ValueError) as error:
                raise LRAError(f"{path}:{line}: unreadable row ({error}); is it a Lightning CSVLogger file?") from None
            curve[step] = number
    return curve


def at_steps(curve: dict[int, float], steps: Sequence[int]) -> list[float | None]:
    """The validation at each step, or None where the run did not validate exactly there."""
    return [curve.get(step) for step in steps]


def number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.0f} min"


def read_results(path: Path) -> dict:
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LRAError(f"{path}: unreadable ({error}); is it a results.json that train.py wrote?") from None
    if not isinstance(results, dict):
        raise LRAError(f"{path}: not a JSON object; is it a results.json that train.py wrote?")
    return results


def row(run: Path, steps: Sequence[int], label: str) -> list[str]:
    results_file, log = run / "results.json", metrics_file(run)
    if log is None and not results_file.is_file():
        raise LRAError(f"{run}: no metrics log ({' or '.join(METRICS)}) and no results.json; a run logs one unless "
                       "logger= leaves out csv")
    results = read_results(results_file) if results_file.is_file() else {}
    cells = [md(label)]
    if log is None:
        cells += ["no log"] * len(steps)
    else:
        cells += ["-" if v is None else f"{100 * v:.2f}" for v in at_steps(val_curve(log), steps)]
    best, speed = number(results.get("best_val_acc")), number(results.get("steps_per_s"))
    cells.append("-" if best is None else f"{100 * best:.2f}")
    cells.append("-" if speed is None else f"{speed:.2f}")
    wall = minutes(number(results.get("train_wall_s")))
    pretrain = results.get("pretrain") if isinstance(results.get("pretrain"), dict) else {}
    if (pretrain_wall := number(pretrain.get("wall_s"))) is not None:
        wall += f" (+{minutes(pretrain_wall)} pretraining)"
    cells += [wall, md(results.get("hardware") or "-")]
    return cells


def labels(runs: Sequence[Path]) -> list[str]:
    """Each run's path below the runs' common parent (`nystrom-listops/fnet-seed1` for `results/*/*`)."""
    resolved = [run.resolve() for run in runs]
    if len(resolved) == 1:
        return [resolved[0].name]
    common = Path(os.path.commonpath(resolved))
    return [str(run.relative_to(common)) or run.name for run in resolved]


def table(runs: Sequence[Path], steps: Sequence[int]) -> str:
    head = [
        "run", *(f"val % @{s // 1000}k" if s % 1000 == 0 else f"val % @{s}" for s in steps),
        "best val %", "steps/s", "wall", "hardware",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row(run, steps, label)) + " |" for run, label in zip(runs, labels(runs), strict=True)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lra.leaderboard.health", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (each with a CSV metrics log)")
    parser.add_argument("--steps", default="1000,2000,3000,4000,5000", help="comma-separated steps (default 1k..5k)")
    args = parser.parse_args(argv)
    try:
        steps = [int(s) for s in args.steps.split(",")]
    except ValueError:
        parser.error(f"--steps {args.steps!r}: give comma-separated integers, e.g. 1000,2000")
    try:
        print(table(args.runs, steps))
    except LRAError as error:
        print(f"error: {error}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
