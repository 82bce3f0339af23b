"""What the benchmarks' command lines share: the timing options and their device-dependent defaults, the device
checks, and one way to run a benchmark (its torch threads set and restored, a user's mistake one line, status 2)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch

from lra.bench.timing import CLOCKS
from lra.errors import LRAError


def int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_timing_options(p: argparse.ArgumentParser, batch_help: str, out: str = "outputs/bench") -> None:
    """--batch, --warmup, --repeats, --steps, --threads, --out: how much is timed, and where the JSON goes."""
    p.add_argument("--batch", type=int, help=batch_help)
    p.add_argument("--warmup", type=int, help="untimed calls first (default 3 on GPU, 1 on CPU)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    p.add_argument("--steps", type=int, help="calls per timed repeat (default 5 on GPU, 1 on CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    p.add_argument("--out", default=out, help="directory for the JSON (and plot)")


def add_device_options(p: argparse.ArgumentParser) -> None:
    """--device, --precision, --clock: what the timed work runs on."""
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=("32", "bf16"), default="32", help="bf16 = autocast to bfloat16")
    p.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                   help="wall time, or CPU time (a shared machine's other load does not count; CPU only)")


def fill_timing_defaults(args: argparse.Namespace, gpu: bool, batch: int | None) -> argparse.Namespace:
    """The defaults that depend on the device: more warm-up and calls per repeat on a GPU; `batch` if none given."""
    args.batch_given = args.batch is not None
    if args.batch is None:
        args.batch = batch
    args.warmup = args.warmup if args.warmup is not None else 3 if gpu else 1
    args.steps = args.steps if args.steps is not None else 5 if gpu else 1
    return args


DEVICES = ("cpu", "cuda", "cuda:<index>", "mps")


def check_device(name: str, clock: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise LRAError(f"--device {name} is not a device; use one of: {', '.join(DEVICES)}") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise LRAError(f"--device {name}: the benchmarks run on {', '.join(DEVICES)}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LRAError("--device cuda: no CUDA device visible to torch; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise LRAError("--device mps: no Apple GPU visible to torch (macOS with Metal only); use --device cpu")
    if device.type != "cpu" and clock == "cpu":
        raise LRAError("--clock cpu measures host CPU time, not GPU work; use --clock wall on a GPU")
    return device


def run(benchmark: Callable[[], object], threads: int | None) -> int:
    """`benchmark()` on `threads` torch threads (restored after); an LRAError is one line and exit status 2."""
    before = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        benchmark()
    except LRAError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(before)
    return 0
