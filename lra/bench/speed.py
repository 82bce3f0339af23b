"""Training steps/s and peak memory vs sequence length per model: the LRA paper's efficiency table.

    python -m lra.bench --models fnet,transformer --lengths 512,1024,2048,4096,8192 --task text [--device cuda]
    python -m lra.bench --peers --peer-dir DIR ...   # against public implementations (lra.bench.peers)
    python -m lra.bench --peers hf ...               # against HF transformers (lra.bench.hf_peers, extra [peers])

Writes bench.json and a log-log plot, bench.png, into --out. Models and tasks are the configs that `python train.py
task=<task> model=<model>` composes, at task.max_len = each length; `<model>-nomix` is the model without its token
mixing (`lra.bench.configs`). On CPU each configuration runs in a fresh process (`lra.bench.worker`), so that its
peak memory is its own.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from lra.atomic import atomic_file
from lra.bench.cli import add_device_options, add_timing_options, check_device, fill_timing_defaults, int_list, run
from lra.bench.configs import base_name, build, random_batch, train_config
from lra.bench.memory import PeakMemory, default_mem_limit_gb
from lra.bench.record import environment, number, write_json
from lra.bench.timing import autocast, is_oom, time_calls
from lra.models import count_parameters
from lra.models.mixers.attention import Attention, kernel_for
from lra.run.config import CONF_DIR, choices
from lra.run.validate import check_config

LENGTHS = (512, 1024, 2048, 4096, 8192)


def bench_model(spec: dict) -> dict:
    """One (model, length) training-step benchmark, in this process. OOM is recorded, not raised."""
    device = torch.device(spec["device"])
    record = {"model": spec["model"], "length": spec["length"], "batch": spec["batch"]}
    meter = PeakMemory(device)
    meter.start()
    state = {}
    try:
        torch.manual_seed(0)
        model, task = build(spec["model"], spec["task"], spec["length"])
        model = state["model"] = model.to(device).train()
        record["n_params"] = count_parameters(model)
        record.update(attention_kernels(model, device))
        batch = random_batch(task, spec["batch"], spec["length"], device)
        optimizer = state["optimizer"] = torch.optim.AdamW(
            model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.1
        )

        def step() -> None:
            with autocast(device, spec["precision"]):
                logits = model(batch)
            F.cross_entropy(logits.float(), batch["label"]).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        seconds = time_calls(
            step, device, spec["warmup"], spec["repeats"], spec["steps_per_repeat"], spec.get("clock", "wall")
        )
    except (RuntimeError, MemoryError) as err:
        if not is_oom(err):
            raise
        record.update(steps_per_s="OOM", step_ms=None, peak_memory_mb=None)
        return record
    finally:
        state.clear()
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    record.update(
        steps_per_s=1.0 / statistics.median(seconds),
        step_ms=1e3 * statistics.median(seconds),
        steps_per_s_repeats=[1.0 / s for s in seconds],
        peak_memory_mb=meter.peak_mb(),
    )
    return record


def attention_kernels(model: torch.nn.Module, device: torch.device) -> dict:
    """The attention dropout of the model's exact-attention layers and the kernel their training step runs."""
    layers = [m for m in model.modules() if isinstance(m, Attention)]
    if not layers:
        return {"attn_dropout": None, "attention_kernel": None}
    dropout = layers[0].dropout
    return {"attn_dropout": dropout, "attention_kernel": kernel_for(device, dropout, training=True)}


def run_isolated(spec: dict, timeout: float | None) -> dict:
    """`bench_model(spec)` in a fresh Python process (`lra.bench.worker`), so that its peak memory is its own."""
    cmd = [sys.executable, "-m", "lra.bench.worker", json.dumps(spec)]
    base = {"model": spec["model"], "length": spec["length"], "batch": spec["batch"]}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**base, "steps_per_s": "timeout", "step_ms": None, "peak_memory_mb": None}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    if proc.returncode == -9:  # SIGKILL: the kernel's OOM killer
        return {**base, "steps_per_s": "OOM", "step_ms": None, "peak_memory_mb": None}
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {**base, "steps_per_s": "error", "step_ms": None, "peak_memory_mb": None, "error": tail}


def ratio_cell(value, reference, digits: int) -> str:
    if isinstance(value, (int, float)) and isinstance(reference, (int, float)) and reference > 0:
        return f"{value:.{digits}f} ({value / reference:.2f}x)"
    return number(value, digits)


def format_table(records: list[dict], baseline: str) -> str:
    """Steps/s and peak memory per model (rows) and length (columns), each with its ratio to `baseline`."""
    models = list(dict.fromkeys(r["model"] for r in records))
    lengths = sorted({r["length"] for r in records})
    by = {(r["model"], r["length"]): r for r in records}
    lines = []
    for title, key, digits in (("steps/s", "steps_per_s", 2), ("peak memory MB", "peak_memory_mb", 0)):
        lines.append(f"{title} (ratio to {baseline})" if any(m == baseline for m in models) else title)
        lines.append(f"{'model':<20}" + "".join(f"{length:>18}" for length in lengths))
        for model in models:
            cells = []
            for length in lengths:
                record, ref = by.get((model, length), {}), by.get((baseline, length), {})
                cells.append(f"{ratio_cell(record.get(key), ref.get(key), digits):>18}")
            lines.append(f"{model:<20}" + "".join(cells))
        lines.append("")
    return "\n".join(lines)


def plot(records: list[dict], path: Path, title: str) -> None:
    """Steps/s and peak memory vs length, log-log, one line per model; lengths that ran out of memory are named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    lengths = sorted({r["length"] for r in records})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for model in dict.fromkeys(r["model"] for r in records):
        rows = sorted((r for r in records if r["model"] == model), key=lambda r: r["length"])
        failed = [f"{r['steps_per_s']} at {r['length']}" for r in rows if not isinstance(r["steps_per_s"], float)]
        label = f"{model} ({', '.join(failed)})" if failed else model
        for ax, key in zip(axes, ("steps_per_s", "peak_memory_mb"), strict=True):
            points = [(r["length"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and r[key] > 0]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=label)
    for ax, label in zip(axes, ("training steps/s", "peak memory (MB)"), strict=True):
        ax.set(xscale="log", yscale="log", xlabel="sequence length", ylabel=label)
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def bench_models(args: argparse.Namespace, device: torch.device) -> dict:
    models = [m for m in args.models.split(",") if m]
    for name in models:  # fail on a bad name or config before the first measurement, not after an hour
        check_config(train_config(args.task, base_name(name)))
    isolate = args.isolate if args.isolate is not None else device.type == "cpu"
    settings = {
        "task": args.task, "batch": args.batch, "precision": args.precision, "warmup": args.warmup,
        "repeats": args.repeats, "steps_per_repeat": args.steps, "clock": args.clock,
    }
    meter = PeakMemory(device)
    print(
        f"{args.task}: batch {args.batch}, precision {args.precision}, {args.warmup} warm-up step(s), median of "
        f"{args.repeats} x {args.steps} step(s), {args.clock} clock, {torch.get_num_threads()} thread(s); "
        f"memory: {meter.method(isolate)}", flush=True,
    )
    records = []
    for length in args.lengths:
        for name in models:
            spec = {"model": name, "length": length, "device": str(device), "threads": args.threads, **settings}
            if isolate:
                spec["mem_limit_gb"] = args.mem_limit_gb if args.mem_limit_gb is not None else default_mem_limit_gb()
                record = run_isolated(spec, args.timeout)
            else:
                record = bench_model(spec)
            records.append(record)
            print(
                f"  {name} L={length}: {number(record['steps_per_s'])} steps/s, "
                f"{number(record['peak_memory_mb'], 0)} MB"
                + (f", attention kernel {record['attention_kernel']}" if record.get("attention_kernel") else ""),
                flush=True,
            )
    payload = {
        "kind": "models", **environment(device), **settings, "memory_method": meter.method(isolate),
        "baseline": args.baseline, "models": models, "lengths": args.lengths, "results": records,
    }
    for record in records:
        ref = next((r for r in records if r["model"] == args.baseline and r["length"] == record["length"]), {})
        for key, out in (("steps_per_s", "speedup"), ("peak_memory_mb", "memory_ratio")):
            a, b = record.get(key), ref.get(key)
            ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0
            record[out] = a / b if ok else None
    print("\n" + format_table(records, args.baseline))
    out = Path(args.out)
    write_json(out / "bench.json", payload)
    title = f"{args.task}, batch {args.batch}, {payload['device_name']}, torch {torch.__version__}"
    plot(records, out / "bench.png", title)
    print(f"wrote {out / 'bench.json'} and {out / 'bench.png'}")
    return payload


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lra.bench", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models", default="fnet,transformer,transformer-attn0",
        help="comma-separated conf/model names, or <name>-nomix (mixer replaced by zeros), <name>-attn0 (attention "
        "dropout 0)",
    )
    p.add_argument("--lengths", type=int_list, default=list(LENGTHS), help="comma-separated sequence lengths")
    p.add_argument("--task", default="text", help="conf/task name: " + ", ".join(choices(CONF_DIR, "task")))
    add_device_options(p)
    add_timing_options(p, "batch size (default: 32 on GPU, 4 on CPU)")
    p.add_argument("--baseline", default="transformer", help="the model that ratios are relative to")
    p.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                   help="each configuration in a fresh subprocess (default on CPU, for its peak RSS)")
    p.add_argument("--mem-limit-gb", type=float, default=None,
                   help="CPU subprocesses: address-space cap above start, exceeding it counts as OOM "
                   "(default: 80%% of the memory available at start)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per isolated configuration")
    args = p.parse_args(argv)
    gpu = args.device.startswith("cuda")
    return fill_timing_defaults(args, gpu, batch=32 if gpu else 4)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from lra.bench import peers

    source = peers.peer_source(argv)
    if source is not None:  # against public implementations of the same methods (lra.bench.peers, .hf_peers)
        name, rest = source
        if name == "hf":
            from lra.bench import hf_peers

            return hf_peers.main(rest)
        if name != "authors":
            print(f"error: --peers {name}: no such peer; choose from {', '.join(peers.SOURCES)}", file=sys.stderr)
            return 2
        return peers.main(rest)
    args = parse_args(argv)
    return run(lambda: bench_models(args, check_device(args.device, args.clock)), args.threads)


if __name__ == "__main__":
    sys.exit(main())
