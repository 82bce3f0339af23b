"""Benchmarks: training steps/s and peak memory vs sequence length per model (the LRA paper's efficiency table),
a micro-benchmark of the Fourier-mixing paths, and DataModule throughput.

    python -m lra.bench --models fnet,transformer --lengths 512,1024,2048,4096,8192 --task text [--device cuda]
    python -m lra.bench --mixing [--lengths 512,...,16384] [--hidden 256]
    python -m lra.bench --loader --task listops [--data-dir DIR]

Each writes JSON into --out (the model benchmark also a log-log plot). Models and tasks are the configs that
`python train.py task=<task> model=<model>` composes (Hydra's compose API over conf/), at task.max_len = each length.
A model name `<name>-nomix` is `<name>` with every token mixer replaced by one that returns zeros: the cost of the
rest of the model, to see what mixing costs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import datetime
import functools
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lra.config import CONF_DIR, compose_train
from lra.errors import LRAError
from lra.models import build_model, count_parameters
from lra.models.mixers import Mixer
from lra.models.mixers.fourier import PATHS, fourier_mix
from lra.validate import check_config, choices

MODEL_LENGTHS = (512, 1024, 2048, 4096, 8192)
MIXING_LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)
NOMIX = "-nomix"


# --- configs and models ------------------------------------------------------------------------------------------
@functools.cache
def composed(task: str, model: str | None = None) -> DictConfig:
    """The config `python train.py task=<task> [model=<model>]` runs with (Hydra's compose API), composed once per
    pair and kept read-only: `train_config` hands out copies."""
    cfg = compose_train([f"task={task}", *([f"model={model}"] if model is not None else [])])
    OmegaConf.set_readonly(cfg, True)
    return cfg


def train_config(task: str, model: str | None = None) -> DictConfig:
    """A writable copy of `composed(task, model)`."""
    cfg = copy.deepcopy(composed(task, model))
    OmegaConf.set_readonly(cfg, False)
    return cfg


class ZeroMixer(Mixer):
    """Stands in for a token mixer in `<name>-nomix` models (benchmark only, not registered): returns zeros."""

    uses_mask = False
    uses_heads = False

    def __init__(self) -> None:
        super().__init__(d_model=0, n_heads=1, max_len=0, dropout=0.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def build(name: str, task: str, length: int) -> tuple[nn.Module, DictConfig]:
    """The model `name` (`<model>` or `<model>-nomix`) as `train.py` builds it for `task` at `length`, and the task
    config."""
    cfg = train_config(task, name.removesuffix(NOMIX))
    cfg.task.max_len = length
    check_config(cfg)
    model = build_model(cfg.model, cfg.task)
    if name.endswith(NOMIX):
        for block in model.encoder.blocks:
            block.mixer = ZeroMixer()
    return model, cfg.task


def random_batch(
    task: Mapping, batch: int, length: int, device: torch.device, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random tokens in [1, vocab_size) (never the pad id 0 of the byte tasks), all positions real, random labels:
    a batch shaped like the task, with `input_ids_2`/`mask_2` for a dual (two-document) task."""
    vocab, n_classes = int(task["vocab_size"]), int(task["n_classes"])
    if vocab < 2 or n_classes < 1:
        raise LRAError(f"task {task.get('name', '?')}: vocab_size={vocab}, n_classes={n_classes}; cannot draw a batch")
    g = torch.Generator().manual_seed(seed)
    out = {"label": torch.randint(0, n_classes, (batch,), generator=g)}
    for suffix in ("", "_2") if task.get("dual", False) else ("",):
        out[f"input_ids{suffix}"] = torch.randint(1, vocab, (batch, length), generator=g)
        out[f"mask{suffix}"] = torch.ones(batch, length, dtype=torch.bool)
    return {k: v.to(device) for k, v in out.items()}


# --- timing and memory -------------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str):
    if precision == "32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


# wall: elapsed time. cpu: this process's CPU time, which other processes on a shared machine do not inflate;
# it sums over threads, so it reads as single-core time with --threads 1.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_calls(
    fn: Callable[[], None], device: torch.device, warmup: int, repeats: int, calls: int, clock: str = "wall"
) -> list[float]:
    """Seconds per call of `fn`, one number per repeat of `calls` calls, after `warmup` untimed calls."""
    now = CLOCKS[clock]
    for _ in range(warmup):
        fn()
    synchronize(device)
    seconds = []
    for _ in range(repeats):
        start = now()
        for _ in range(calls):
            fn()
        synchronize(device)
        seconds.append((now() - start) / calls)
    return seconds


def proc_status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak memory of what runs between `start()` and `peak_mb()`, beyond what was allocated at `start()`.

    CUDA: `max_memory_allocated`. CPU: the process's peak resident set size (Linux VmHWM, reset at `start()` through
    /proc/self/clear_refs) minus its resident size at `start()`, after handing freed heap memory back to the system
    (malloc_trim), so that memory kept from earlier work does not hide new allocations. Most reliable in a fresh
    process, which is how `--isolate` (the CPU default) runs each configuration.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0

    def method(self, isolated: bool) -> str:
        if self.device.type == "cuda":
            return "cuda max_memory_allocated minus allocated at start"
        where = "a fresh subprocess per configuration" if isolated else "in-process (one process for all)"
        return f"cpu peak RSS (VmHWM) minus RSS before the model was built, {where}"

    def start(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
        self.base = (proc_status_kb("VmRSS") or 0) * 1024

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
        peak_kb = proc_status_kb("VmHWM")
        if peak_kb is None:  # not Linux: the lifetime peak, meaningful in a fresh process only
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == "darwin" else 1)
        return max(0.0, (peak_kb * 1024 - self.base) / 2**20)


def is_oom(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


# --- the model benchmark -----------------------------------------------------------------------------------------
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


def run_isolated(spec: dict, timeout: float | None) -> dict:
    """`bench_model(spec)` in a fresh Python process, so that its peak memory is its own."""
    cmd = [sys.executable, "-m", "lra.bench", "--one", json.dumps(spec)]
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


def limit_address_space(gigabytes: float | None) -> None:
    """Cap this process's address space `gigabytes` above its current size, so a too-large CPU run fails with an
    allocation error (recorded as OOM) instead of pushing the machine into swap or the OOM killer."""
    size_kb = proc_status_kb("VmSize")
    if gigabytes and size_kb:
        limit = size_kb * 1024 + int(gigabytes * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def default_mem_limit_gb() -> float | None:
    """80% of the memory available now (Linux), so one isolated CPU run cannot take the machine down."""
    available_kb = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available_kb = int(line.split()[1])
    return 0.8 * available_kb / 2**20 if available_kb else None


def number(value, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value if value is not None else "-")


def ratio_cell(value, reference, digits: int) -> str:
    if isinstance(value, (int, float)) and isinstance(reference, (int, float)) and reference > 0:
        return f"{value:.{digits}f} ({value / reference:.2f}x)"
    return number(value, digits)


def speed_cell(ms, speedup: float | None) -> str:
    return f"{ms:.2f} ({speedup:.2f}x)" if isinstance(ms, float) and speedup else number(ms)


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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def environment(device: torch.device) -> dict:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        with contextlib.suppress(OSError):
            name = next(
                (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), name,
            )
    return {
        "device": device.type, "device_name": name, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def bench_models(args: argparse.Namespace, device: torch.device) -> dict:
    models = [m for m in args.models.split(",") if m]
    for name in models:  # fail on a bad name or config before the first measurement, not after an hour
        check_config(train_config(args.task, name.removesuffix(NOMIX)))
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
                f"{number(record['peak_memory_mb'], 0)} MB", flush=True,
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


# --- the mixing micro-benchmark ----------------------------------------------------------------------------------
def baseline_mix(x: torch.Tensor) -> torch.Tensor:
    """What FNet implementations usually write: autograd through a full complex FFT."""
    return torch.fft.fftn(x.float(), dim=(-2, -1)).real.to(x.dtype)


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

            def run(fn=fn, x=x, grad=grad) -> None:
                leaf = x.detach().requires_grad_(True)
                fn(leaf).backward(grad)

            try:
                seconds = time_calls(run, device, args.warmup, args.repeats, args.steps, args.clock)
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


# --- the DataModule benchmark ------------------------------------------------------------------------------------
def bench_loader(args: argparse.Namespace) -> dict:
    """Training batches/s of a task's DataModule (built as `train.py` builds it) on the data under --data-dir."""
    from lra.train import build_datamodule

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


# --- command line ------------------------------------------------------------------------------------------------
def int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lra.bench", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--mixing", action="store_true", help="micro-benchmark the Fourier-mixing paths")
    mode.add_argument("--loader", action="store_true", help="batches/s of the task's DataModule (needs its data)")
    mode.add_argument("--one", help=argparse.SUPPRESS)  # internal: one model benchmark as JSON, for --isolate
    p.add_argument("--models", default="fnet,transformer", help="comma-separated conf/model names (or <name>-nomix)")
    p.add_argument("--lengths", type=int_list, help="comma-separated sequence lengths")
    p.add_argument("--task", default="text", help="conf/task name: " + ", ".join(choices(CONF_DIR, "task")))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, help="batch size (default: 32 on GPU; 4 on CPU, 8 for --mixing)")
    p.add_argument("--precision", choices=("32", "bf16"), default="32", help="bf16 = autocast to bfloat16")
    p.add_argument("--warmup", type=int, help="untimed calls first (default 3 on GPU, 1 on CPU)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    p.add_argument("--steps", type=int, help="calls per timed repeat (default 5 on GPU, 1 on CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    p.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                   help="wall time, or CPU time (a shared machine's other load does not count; CPU only)")
    p.add_argument("--baseline", default="transformer", help="the model that ratios are relative to")
    p.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                   help="each configuration in a fresh subprocess (default on CPU, for its peak RSS)")
    p.add_argument("--mem-limit-gb", type=float, default=None,
                   help="CPU subprocesses: address-space cap above start, exceeding it counts as OOM "
                   "(default: 80%% of the memory available at start)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per isolated configuration")
    p.add_argument("--hidden", type=int, default=256, help="--mixing: hidden size D")
    p.add_argument("--matmul-max-len", type=int, default=None,
                   help="--mixing: skip the matmul path above this length (default 4096 on CPU, no limit on GPU)")
    p.add_argument("--data-dir", default=os.environ.get("LRA_DATA", "data"), help="--loader: the data directory")
    p.add_argument("--out", default="outputs/bench", help="directory for the JSON and plot")
    args = p.parse_args(argv)
    gpu = args.device.startswith("cuda")
    args.batch_given = args.batch is not None
    if args.batch is None:
        args.batch = 32 if gpu else 8 if args.mixing else 4
    args.warmup = args.warmup if args.warmup is not None else 3 if gpu else 1
    args.steps = args.steps if args.steps is not None else 5 if gpu else 1
    if args.lengths is None:
        args.lengths = list(MIXING_LENGTHS if args.mixing else MODEL_LENGTHS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.one:
            spec = json.loads(args.one)
            if spec.get("threads"):
                torch.set_num_threads(spec["threads"])
            limit_address_space(spec.get("mem_limit_gb"))
            print(json.dumps(bench_model(spec)), flush=True)
            return 0
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise LRAError("--device cuda: no CUDA device visible to torch; use --device cpu")
        if device.type != "cpu" and args.clock == "cpu":
            raise LRAError("--clock cpu measures host CPU time, not GPU work; use --clock wall on a GPU")
        if args.loader:
            bench_loader(args)
        elif args.mixing:
            bench_mixing(args, device)
        else:
            bench_models(args, device)
    except LRAError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
