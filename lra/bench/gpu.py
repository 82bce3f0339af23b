"""The one prepared GPU run: everything a CPU cannot tell, in one command, each part within its own time budget.

    python -m lra.bench.gpu [--budget a=600,b=600,c=1800,d=7200] [--data DATA] [--smoke]

(a) the GPU tests (tests/test_gpu.py); (b) the Fourier mixing paths timed on this GPU, and the measured `matmul`
threshold (lra.models.mixers.fourier.MATMUL_MAX) written to fourier_threshold.json; (c) training-step speed and
peak memory of fnet, transformer (with the SDPA kernel that ran), performer, linformer, nystromformer, s4d and
lru at L = 1K..16K, batch 32, bf16 and fp32, OOM recorded; (d) `experiment=lra/listops` for 5k steps in bf16,
fnet then transformer, seed 0 (results.json each). Everything goes under benchmarks/gpu/<device>_<date>/ with the
device, torch and CUDA versions (run.json); one summary table is printed at the end, with what was skipped and why.
A part stops at its budget and says what it did not reach. `--smoke` does all of it at tiny sizes on any machine
(CI runs it on CPU, tests/test_bench_gpu.py), so the script cannot rot before a GPU is free.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from lra.bench.configs import build, random_batch
from lra.bench.record import environment, number, write_json
from lra.bench.sdpa import sdpa_kernels
from lra.bench.speed import bench_model
from lra.errors import LRAError

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("a", "b", "c", "d")
BUDGET = {"a": 600, "b": 600, "c": 1800, "d": 7200}  # seconds
MODELS = ("fnet", "transformer", "performer", "linformer", "nystromformer", "s4d", "lru")
FULL = {"lengths": [1024, 2048, 4096, 8192, 16384], "batch": 32, "mix_lengths": [256, 512, 1024, 2048, 4096, 8192],
        "hidden": 256, "steps": 5000, "precisions": ("bf16", "32"), "repeats": 3}
SMOKE = {"lengths": [32], "batch": 1, "mix_lengths": [16], "hidden": 8, "steps": 2, "precisions": ("bf16", "32"),
         "repeats": 1}
TINY_TRAIN = ["model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.d_ff=16", "task.max_len=64",
              "task.batch_size=4", "task.num_workers=0", "trainer.val_check_interval=2", "trainer.accelerator=cpu"]


class Part:
    """A part's clock and record: `left()` seconds of its budget, what it `skip`ped and why."""

    def __init__(self, name: str, budget: float) -> None:
        self.name, self.budget, self.started = name, budget, time.monotonic()
        self.skipped: list[str] = []
        self.summary: list[str] = []
        self.seconds = 0.0  # set when the part ends

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.started)

    def skip(self, what: str, why: str) -> None:
        self.skipped.append(f"{what}: {why}")


def versions(device: torch.device) -> dict:
    return {
        **environment(device), "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "gpus": torch.cuda.device_count(), "python": platform.python_version(),
    }


def part_a(part: Part, out: Path, smoke: bool) -> None:
    """The GPU tests, with their skip reasons (every test skips on a machine without CUDA)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/test_gpu.py",
           f"--junitxml={out / 'gpu_tests.xml'}"]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(1.0, part.left()))
    except subprocess.TimeoutExpired:
        part.skip("the tests not finished", f"budget {part.budget:.0f} s")
        return
    (out / "gpu_tests.txt").write_text(proc.stdout + proc.stderr)
    last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    part.summary.append(f"tests/test_gpu.py: {last} (exit {proc.returncode}; gpu_tests.txt)")
    if "skipped" in last and "passed" not in last:
        part.skip("the GPU tests", "no CUDA device (see gpu_tests.txt for each reason)")


def part_b(part: Part, out: Path, device: torch.device, sizes: dict) -> None:
    """The Fourier paths, forward + backward; the longest length where `matmul` still beats the FFT paths."""
    from lra.models.mixers.fourier import PATHS, fourier_mix

    records, threshold = [], 0
    for length in sizes["mix_lengths"]:
        if part.left() <= 0:
            part.skip(f"mixing L={length} and longer", "budget spent")
            break
        x = torch.randn(sizes["batch"], length, sizes["hidden"], device=device)
        times = {}
        for path in (p for p in PATHS if p != "auto"):  # auto is the chooser being calibrated
            def call(path=path, x=x) -> None:
                fourier_mix(x.detach().requires_grad_(True), path).sum().backward()
            try:
                times[path] = 1e3 * statistics.median(timed(call, device, repeats=sizes["repeats"]))
            except (RuntimeError, MemoryError) as err:
                times[path] = "OOM" if "memory" in str(err) else f"error: {str(err).splitlines()[0][:80]}"
            records.append({"length": length, "path": path, "ms": times[path]})
        fastest_fft = min((v for k, v in times.items() if k != "matmul" and isinstance(v, float)), default=None)
        if isinstance(times.get("matmul"), float) and fastest_fft is not None and times["matmul"] < fastest_fft:
            threshold = length
    write_json(out / "fourier_threshold.json", {
        "device": str(device), "hidden": sizes["hidden"], "batch": sizes["batch"], "matmul_max_len": threshold,
        "results": records,
        "use": "set MATMUL_MAX['cuda'] in lra/models/mixers/fourier.py to (matmul_max_len, hidden)",
    })
    part.summary.append(f"matmul beats the FFT paths up to L={threshold} (fourier_threshold.json)")


def timed(fn, device: torch.device, repeats: int) -> list[float]:
    from lra.bench.timing import time_calls

    return time_calls(fn, device, warmup=1, repeats=repeats, calls=1)


def part_c(part: Part, out: Path, device: torch.device, sizes: dict) -> None:
    """Speed and memory per (precision, model, length), each in this process; OOM recorded."""
    records = []
    for precision in sizes["precisions"]:
        for length in sizes["lengths"]:
            for name in MODELS:
                if part.left() <= 0:
                    part.skip(f"{name} L={length} {precision}", "budget spent")
                    continue
                spec = {"model": name, "task": "text", "length": length, "batch": sizes["batch"], "device": str(device),
                        "precision": precision, "warmup": 1, "repeats": sizes["repeats"], "steps_per_repeat": 1,
                        "threads": None}
                record = {**bench_model(spec), "precision": precision}
                if name == "transformer" and record["steps_per_s"] != "OOM":
                    record["sdpa_kernel"] = transformer_kernel(length, sizes["batch"], device, precision)
                records.append(record)
    write_json(out / "speed.json", {"kind": "models", **versions(device), "results": records})
    for precision in sizes["precisions"]:
        part.summary.append(f"{precision}: " + "; ".join(
            f"{r['model']}@{r['length']} {number(r['steps_per_s'])}/s {number(r['peak_memory_mb'], 0)} MB"
            + (f" [{r['sdpa_kernel']}]" if r.get("sdpa_kernel") else "")
            for r in records if r["precision"] == precision))


def transformer_kernel(length: int, batch: int, device: torch.device, precision: str) -> str:
    model, task = build("transformer", "text", length)
    model = model.to(device).train()
    data = random_batch(task, batch, length, device)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    with torch.autocast(device.type, dtype=dtype, enabled=precision == "bf16"):
        kernels = sdpa_kernels(lambda: model(data))
    return ",".join(sorted(set(kernels))) or "no SDPA call (CPU dropout path)"


def part_d(part: Part, out: Path, device: torch.device, sizes: dict, data: Path, smoke: bool) -> None:
    """`experiment=lra/listops`, bf16, seed 0: fnet then transformer, each a real train.py run."""
    if smoke:
        data = out / "data"
        subprocess.run([sys.executable, "-m", "data_prep.listops", "--out", str(data / "listops-1000"), "--train",
                        "64", "--val", "16", "--test", "16", "--min-length", "10", "--max-length", "60"],
                       cwd=ROOT, check=True, capture_output=True)
    elif not (data / "listops-1000" / "basic_train.tsv").exists():
        part.skip("ListOps training", f"no {data / 'listops-1000'}; python -m data_prep.listops --out it, or --data")
        return
    precision = "bf16-mixed" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "32-true"
    for name in ("fnet", "transformer"):
        if part.left() <= 0:
            part.skip(f"listops {name}", "budget spent")
            continue
        run_dir = out / "listops" / name
        cmd = [sys.executable, "train.py", "experiment=lra/listops", f"model={name}", "seed=0", "logger=csv",
               f"data_dir={data}", f"hydra.run.dir={run_dir}", f"trainer.max_steps={sizes['steps']}",
               f"trainer.precision={precision}", "trainer.enable_progress_bar=false", *(TINY_TRAIN if smoke else [])]
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(1.0, part.left()))
        except subprocess.TimeoutExpired:
            part.skip(f"listops {name} (stopped)", f"budget {part.budget:.0f} s; resume: {' '.join(cmd[1:])} "
                      "resume=auto")
            continue
        (run_dir / "train.log").parent.mkdir(parents=True, exist_ok=True)
        (run_dir / "train.log").write_text(proc.stdout + proc.stderr)
        found = re.search(r"best val acc ([0-9.]+), test acc ([0-9.]+)", proc.stdout)
        result = f"test acc {found[2]} (best val {found[1]})" if found else f"failed, exit {proc.returncode}"
        part.summary.append(f"listops {name} {sizes['steps']} steps {precision}: {result} ({run_dir}/results.json)")


def parse_budget(text: str) -> dict[str, float]:
    budget = dict(BUDGET)
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in PARTS or not value.replace(".", "", 1).isdigit():
            raise LRAError(f"--budget {item!r}: give part=seconds for parts {', '.join(PARTS)} (e.g. c=900)")
        budget[key] = float(value)
    return budget


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lra.bench.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes, any device: the script's own test")
    p.add_argument("--budget", default="", help="seconds per part, e.g. a=600,b=600,c=1800,d=7200 (those defaults)")
    p.add_argument("--parts", default="abcd", help="which parts to run (default abcd)")
    p.add_argument("--data", type=Path, default=ROOT / "data", help="data_dir holding listops-1000 (part d)")
    p.add_argument("--out", type=Path, default=None, help="default benchmarks/gpu/<device>_<date>")
    args = p.parse_args(argv)
    try:
        budget = parse_budget(args.budget)
    except LRAError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not args.smoke:
        print("warning: no CUDA device: parts b-d measure this CPU (use --smoke for the quick check)", file=sys.stderr)
    sizes = SMOKE if args.smoke else FULL
    env = versions(device)
    label = re.sub(r"[^A-Za-z0-9]+", "-", env["device_name"] if device.type == "cuda" else "cpu").strip("-").lower()
    out = args.out or ROOT / "benchmarks" / "gpu" / f"{label}_{datetime.date.today().isoformat()}"
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "run.json", {**env, "smoke": args.smoke, "budget_s": budget, "sizes": sizes})
    print(f"{env['device_name']} | torch {env['torch']} | CUDA {env['cuda']} | writing {out}", flush=True)
    parts = []
    for name in PARTS:
        part = Part(name, budget[name])
        parts.append(part)
        if name not in args.parts:
            part.skip(f"part {name}", "not in --parts")
            continue
        print(f"part {name} (budget {part.budget:.0f} s) ...", flush=True)
        if name == "a":
            part_a(part, out, args.smoke)
        elif name == "b":
            part_b(part, out, device, sizes)
        elif name == "c":
            part_c(part, out, device, sizes)
        else:
            part_d(part, out, device, sizes, args.data, args.smoke)
        part.seconds = time.monotonic() - part.started
    lines = [f"{'part':<5} {'seconds':>8}  result"]
    for part in parts:
        for i, line in enumerate(part.summary or ["-"]):
            lines.append(f"{part.name if i == 0 else '':<5} {f'{part.seconds:.0f}' if i == 0 else '':>8}  {line}")
        lines += [f"{'':<5} {'':>8}  skipped {s}" for s in part.skipped]
    table = "\n".join(lines)
    (out / "summary.txt").write_text(table + "\n")
    print("\n" + table + f"\n\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
