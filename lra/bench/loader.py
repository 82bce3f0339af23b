"""Training batches/s of a task's DataModule, built as `train.py` builds it, on the data under --data-dir.

    python -m lra.bench.loader --task listops [--data-dir DIR]

Writes loader.json into --out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

from lra.bench.cli import add_timing_options, fill_timing_defaults, run
from lra.bench.configs import train_config
from lra.bench.record import environment, write_json
from lra.bench.timing import time_calls
from lra.data.build import build_datamodule
from lra.run.config import CONF_DIR, choices


def bench_loader(args: argparse.Namespace) -> dict:
    """Training batches/s of a task's DataModule (built as `train.py` builds it) on the data under --data-dir."""
    cfg = train_config(args.task)
    cfg.data_dir = args.data_dir
    if args.batch_given:
        cfg.task.batch_size = args.batch
    datamodule = build_datamodule(cfg.task, 0)
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    batches = iter(loader)

    def next_batch() -> None:
        nonlocal batches
        try:
            next(batches)
        except StopIteration:
            batches = iter(loader)
            next(batches)

    seconds = time_calls(next_batch, torch.device("cpu"), args.warmup, args.repeats, args.steps)
    per_s = 1.0 / statistics.median(seconds)
    payload = {
        "kind": "loader", **environment(torch.device("cpu")), "task": args.task, "batch": int(cfg.task.batch_size),
        "max_len": int(cfg.task.max_len), "num_workers": int(cfg.task.get("num_workers", 0)),
        "batches_per_s": per_s, "tokens_per_s": per_s * int(cfg.task.batch_size) * int(cfg.task.max_len),
        "batches_per_s_repeats": [1.0 / s for s in seconds],
    }
    print(f"{args.task} train loader: {per_s:.1f} batches/s ({payload['tokens_per_s']:.3g} tokens/s), "
          f"batch {payload['batch']}, {payload['num_workers']} workers")
    write_json(Path(args.out) / "loader.json", payload)
    return payload


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lra.bench.loader", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="text", help="conf/task name: " + ", ".join(choices(CONF_DIR, "task")))
    p.add_argument("--data-dir", default=os.environ.get("LRA_DATA", "data"), help="the data directory")
    add_timing_options(p, "batch size (default: the task config's task.batch_size)")
    # The defaults follow the machine, as the other benchmarks' follow their --device.
    return fill_timing_defaults(p.parse_args(argv), gpu=torch.cuda.is_available(), batch=None)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run(lambda: bench_loader(args), args.threads)


if __name__ == "__main__":
    sys.exit(main())
