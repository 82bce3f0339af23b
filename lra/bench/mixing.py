"""Forward + backward of every Fourier-mixing path against what FNet implementations usually write,
`fftn(x).real` with autograd, per sequence length.

    python -m lra.bench.mixing [--lengths 512,...,16384] [--hidden 256] [--device cuda]

Writes mixing.json into --out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from lra.bench.cli import add_device_options, add_timing_options, check_device, fill_timing_defaults, int_list, run
from lra.bench.record import environment, number, write_json
from lra.bench.timing import is_oom, time_calls
from lra.models.mixers.fourier import PATHS, fourier_mix

LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)


def baseline_mix(x: torch.Tensor) -> torch.Tensor:
    """What FNet implementations usually write: autograd through a full complex FFT."""
    return torch.fft.fftn(x.float(), dim=(-2, -1)).real.to(x.dtype)


def speed_cell(ms, speedup: float | None) -> str:
    return f"{ms:.2f} ({speedup:.2f}x)" if isinstance(ms, float) and speedup else number(ms)


def bench_mixing(args: argparse.Namespace, device: torch.device) -> dict:
    """Forward + backward of every mixing path vs `fftn(x).real` with autograd, per length."""
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    matmul_max = args.matmul_max_len if args.matmul_max_len is not None else (4096 if device.type == "cpu" else 0)
    candidates: dict[str, Callable] = {"fftn.real (autograd)": baseline_mix}
    for path in PATHS:
        candidates[path] = lambda x, path=path: fourier_mix(x, path)
    print(
        f"mixing forward+backward: batch {args.batch}, hidden {args.hidden}, {dtype}, {args.warmup} warm-up, "
        f"median of {args.repeats} x {args.steps}, {args.clock} clock, {torch.get_num_threads()} thread(s)",
        flush=True,
    )
    records = []
    for length in args.lengths:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(args.batch, length, args.hidden, generator=g).to(device, dtype)
        grad = torch.randn(x.shape, generator=g).to(device, dtype)
        base_ms = None
        for name, fn in candidates.items():
            record = {"length": length, "path": name}
            if name == "matmul" and matmul_max and length > matmul_max:
                records.append({**record, "ms": "skipped", "speedup": None})
                continue

            def call(fn=fn, x=x, grad=grad) -> None:
                leaf = x.detach().requires_grad_(True)
                fn(leaf).backward(grad)

            try:
                seconds = time_calls(call, device, args.warmup, args.repeats, args.steps, args.clock)
                ms = 1e3 * statistics.median(seconds)
            except (RuntimeError, MemoryError) as err:
                if not is_oom(err):
                    raise
                ms = "OOM"
            if base_ms is None:
                base_ms = ms
            ok = isinstance(ms, float) and isinstance(base_ms, float)
            records.append({**record, "ms": ms, "speedup": base_ms / ms if ok else None})
            print(f"  L={length} {name}: {number(ms)} ms", flush=True)
    names = list(candidates)
    by = {(r["length"], r["path"]): r for r in records}
    lines = [f"{'length':>8}" + "".join(f"{n:>24}" for n in names)]
    for length in args.lengths:
        cells = [by[(length, name)] for name in names]
        lines.append(f"{length:>8}" + "".join(f"{speed_cell(r['ms'], r['speedup']):>24}" for r in cells))
    print("\nms per forward+backward (speed-up vs fftn.real with autograd)\n" + "\n".join(lines))
    payload = {
        "kind": "mixing", **environment(device), "batch": args.batch, "hidden": args.hidden, "dtype": str(dtype),
        "warmup": args.warmup, "repeats": args.repeats, "calls_per_repeat": args.steps, "clock": args.clock,
        "lengths": args.lengths,
        "matmul_max_len": matmul_max, "results": records,
    }
    write_json(Path(args.out) / "mixing.json", payload)
    print(f"wrote {Path(args.out) / 'mixing.json'}")
    return payload


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lra.bench.mixing", description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int_list, default=list(LENGTHS), help="comma-separated sequence lengths")
    p.add_argument("--hidden", type=int, default=256, help="hidden size D")
    p.add_argument("--matmul-max-len", type=int, default=None,
                   help="skip the matmul path above this length (default 4096 on CPU, no limit on GPU)")
    add_device_options(p)
    add_timing_options(p, "batch size (default: 32 on GPU, 8 on CPU)")
    args = p.parse_args(argv)
    gpu = args.device.startswith("cuda")
    return fill_timing_defaults(args, gpu, batch=32 if gpu else 8)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run(lambda: bench_mixing(args, check_device(args.device, args.clock)), args.threads)


if __name__ == "__main__":
    sys.exit(main())
