"""Forward + backward of the LRU's scan (`lra.models.mixers.lru.parallel_scan`) against the textbook Hillis-Steele
doubling scan over the whole sequence, with the bytes autograd keeps for the backward, per sequence length.

    python -m lra.bench.scan [--lengths 1024,4096,16384] [--states 256] [--device cuda]

Writes scan.json into --out.
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
from lra.bench.timing import time_calls
from lra.models.mixers.lru import parallel_scan

LENGTHS = (1024, 4096, 16384)


def doubling_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The baseline: ceil(log2 L) doubling steps over the whole sequence, a [L, N], b [B, L, N]."""
    length, shift = b.shape[1], 1
    while shift < length:
        b = torch.cat([b[:, :shift], b[:, shift:] + a[shift:] * b[:, :-shift]], dim=1)
        a = torch.cat([a[:shift], a[shift:] * a[:-shift]], dim=0)
        shift *= 2
    return b


def saved_mb(fn: Callable, a: torch.Tensor, b: torch.Tensor) -> float:
    """MB that autograd keeps for the backward of one call (every saved tensor counted)."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(a, b)
    return total / 2**20


def bench_scan(args: argparse.Namespace, device: torch.device) -> dict:
    candidates = {"doubling": doubling_scan, "parallel_scan": parallel_scan}
    print(f"scan forward+backward: batch {args.batch}, {args.states} complex64 states, {args.warmup} warm-up, median "
          f"of {args.repeats} x {args.steps}, {args.clock} clock, {torch.get_num_threads()} thread(s)", flush=True)
    records = []
    for length in args.lengths:
        g = torch.Generator().manual_seed(0)
        lam = torch.polar(1 - 0.1 * torch.rand(args.states, generator=g), torch.rand(args.states, generator=g) * 6.28)
        b = torch.randn(args.batch, length, args.states, dtype=torch.complex64, generator=g)
        lam, b = lam.to(device), b.to(device)
        reference = parallel_scan(lam.to(torch.complex128).expand(length, -1), b.to(torch.complex128))
        base_ms = None
        for name, fn in candidates.items():
            lam_leaf, b_leaf = lam.clone().requires_grad_(True), b.clone().requires_grad_(True)

            def call(fn=fn, lam_leaf=lam_leaf, b_leaf=b_leaf, length=length) -> None:
                fn(lam_leaf.expand(length, -1), b_leaf).abs().sum().backward()

            ms = 1e3 * statistics.median(time_calls(call, device, args.warmup, args.repeats, args.steps, args.clock))
            base_ms = base_ms or ms
            with torch.no_grad():
                out = fn(lam.expand(length, -1), b)
                error = ((out - reference).abs().max() / reference.abs().max()).item()
            records.append({"length": length, "scan": name, "ms": ms, "speedup": base_ms / ms,
                            "saved_mb": saved_mb(fn, lam_leaf.expand(length, -1), b_leaf), "float32_error": error})
            print(f"  L={length} {name}: {number(ms)} ms, {records[-1]['saved_mb']:.0f} MB saved, "
                  f"error {error:.1e}", flush=True)
    payload = {"kind": "scan", **environment(device), "batch": args.batch, "states": args.states,
               "warmup": args.warmup, "repeats": args.repeats, "calls_per_repeat": args.steps, "clock": args.clock,
               "lengths": args.lengths, "results": records}
    write_json(Path(args.out) / "scan.json", payload)
    print(f"wrote {Path(args.out) / 'scan.json'}")
    return payload


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lra.bench.scan", description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int_list, default=list(LENGTHS), help="comma-separated sequence lengths")
    p.add_argument("--states", type=int, default=256, help="complex states N (the LRU's d_state)")
    add_device_options(p)
    add_timing_options(p, "batch size (default 1)")
    args = p.parse_args(argv)
    return fill_timing_defaults(args, args.device.startswith("cuda"), batch=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run(lambda: bench_scan(args, check_device(args.device, args.clock)), args.threads)


if __name__ == "__main__":
    sys.exit(main())
