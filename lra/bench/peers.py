"""`python -m lra.bench --peers`: our training step against public PyTorch implementations of the same methods at
the same sizes, timed interleaved in one process (peer, ours, peer, ours, ...) so that a shared machine's load falls
on both alike; the ratio peer s/step / ours s/step of each pair, and their median per model, are printed (above 1:
ours is faster). `--clock cpu` times this process's CPU time, which the other load inflates far less than wall time.

    python -m lra.bench --peers --peer-dir /tmp/nystromformer/LRA/code --threads 1 --clock cpu --batch 32
    python -m lra.bench --peers hf --threads 1 --batch 2 --length 1024   # HF transformers (lra.bench.hf_peers)

Peers are imported at benchmark time only, never vendored:

- `nystromformer-lra` (`--peer-dir`): the Nystromformer authors' LRA code (github mlpen/Nystromformer, LRA/code/:
  model_wrapper.ModelForSC, model.py, attention*.py), e.g. exported with
  `git archive HEAD LRA/code | tar -x -C /tmp/nystromformer`. Its Performer needs `performer_pytorch` (and
  `einops`) importable; `--peer-dir` may name several directories (os.pathsep-separated), all put on sys.path.
  Whole models: embeddings, 2 pre-norm blocks, CLS head, cross-entropy, backward, AdamW; `PAIRS` says what differs.

Both sides: batch --batch, --length positions seen by every layer (CLS included: ours gets length - 1 tokens and
prepends CLS, the authors' code overwrites the last token with CLS), d 64, FFN 128, 2 heads, 2 layers, dropout 0.1,
attention dropout 0, learned positions, random tokens, no padding; parameter counts are printed beside the times.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from lra.bench.cli import run
from lra.bench.configs import random_batch, train_config
from lra.bench.record import environment, write_json
from lra.bench.timing import CLOCKS
from lra.errors import LRAError
from lra.models import build_model, count_parameters
from lra.run.validate import check_config

SIZES = {"n_layers": 2, "d_model": 64, "n_heads": 2, "d_ff": 128, "dropout": 0.1, "attn_dropout": 0.0}


@dataclass(frozen=True)
class Pair:
    """One comparison: our conf/model `ours` with `options`, against the authors' `attn_type` with `extra` config."""

    label: str
    ours: str
    attn_type: str
    options: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    differs: str = ""
    length: int | None = None  # this pair's length, whatever --length says (a multiple of its landmarks)


PAIRS = {
    "transformer": Pair(
        "transformer", "transformer", "softmax",
        differs="same computation; ours runs SDPA's fused kernel, theirs matmul + softmax (with a -1e6 mask term)",
    ),
    "linformer": Pair(
        "linformer (k 256)", "linformer", "linformer", {"proj_len": 256}, {"linformer_k": 256},
        differs="theirs: one E [heads, k, L] shared by every layer (same total parameters as our E per layer)",
    ),
    "performer": Pair(
        "performer (256 features, FAVOR+ softmax)", "performer", "performer", {"num_features": 256, "redraw_every": 0},
        {"rp_dim": 256, "kernel_type": "exp"},
        differs="theirs (performer_pytorch FastAttention, softmax kernel whatever kernel_type says): q, k scaled by "
        "d^-1/4 twice, pads' keys zeroed before the feature map so pads still enter the normaliser, eps 1e-4; ours: "
        "pads have no features, eps 1e-6; features fixed on both sides",
    ),
    "nystromformer": Pair(
        "nystromformer (125 landmarks)", "nystromformer", "nystrom", {"num_landmarks": 125, "conv_kernel_size": 35},
        {"num_landmarks": 125, "conv_kernel_size": 35},
        differs="theirs: landmarks by reshape (L must be a multiple of the landmarks), pads inside segments, one "
        "pinv scale per batch; ours: segments over each row's real tokens, masked landmarks, per-matrix scale",
    ),
    "nystromformer-2048": Pair(
        "nystromformer (L 2048, 128 landmarks)", "nystromformer", "nystrom",
        {"num_landmarks": 128, "conv_kernel_size": 35}, {"num_landmarks": 128, "conv_kernel_size": 35},
        differs="as nystromformer", length=2048,
    ),
    "linear_transformer": Pair(
        "linear transformer (elu + 1)", "linear_transformer", "linear",
        differs="theirs has no normaliser (phi(Q) (phi(K)^T V) only, scaled by d^-1/2); ours divides by "
        "phi(Q) sum phi(K), as the paper",
    ),
}


def build_ours(model: str, options: dict, length: int) -> tuple[torch.nn.Module, dict]:
    """Our conf/model `model` at `SIZES` with learned positions and `options`, whose layers see `length` positions
    (CLS included), and its task config (the Text task's)."""
    cfg = train_config("text", model)
    cfg.task.max_len = length - 1  # the encoder prepends CLS
    cfg.model.update({**SIZES, "pos": "learned", **options})
    check_config(cfg)
    return build_model(cfg.model, cfg.task), cfg.task


def our_model(pair: Pair, length: int) -> tuple[torch.nn.Module, dict]:
    """Our model for `pair` whose layers see `length` positions (CLS included), and its task config."""
    return build_ours(pair.ours, pair.options, length)


def authors_config(pair: Pair, length: int, vocab: int) -> dict:
    """The config dict of the authors' ModelForSC (LRA/code/lra_config.py's keys) at our sizes."""
    return {
        "mixed_precision": False, "pooling_mode": "CLS", "vocab_size": vocab, "num_classes": 2,
        "embedding_dim": SIZES["d_model"], "transformer_dim": SIZES["d_model"],
        "transformer_hidden_dim": SIZES["d_ff"], "head_dim": SIZES["d_model"] // SIZES["n_heads"],
        "num_head": SIZES["n_heads"], "num_layers": SIZES["n_layers"], "max_seq_len": length, "seq_len": length,
        "dropout_prob": SIZES["dropout"], "attention_dropout": SIZES["attn_dropout"],
        "attention_grad_checkpointing": False, "tied_weights": False, "learn_pos_emb": True,
        "attn_type": pair.attn_type, **pair.extra,
    }


def import_authors(peer_dirs: list[str]):
    """The authors' `model_wrapper` module, from the directories named by --peer-dir."""
    if not any((Path(path) / "model_wrapper.py").is_file() for path in peer_dirs):
        raise LRAError(f"--peer-dir {os.pathsep.join(peer_dirs)}: no model_wrapper.py there; export "
                       "mlpen/Nystromformer's LRA/code into it")
    for path in reversed(peer_dirs):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        return importlib.import_module("model_wrapper")
    except ImportError as err:
        raise LRAError(
            f"--peer-dir {os.pathsep.join(peer_dirs)}: cannot import the authors' model_wrapper ({err}); export "
            "mlpen/Nystromformer's LRA/code there"
        ) from None


def training_step(model: torch.nn.Module, loss: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """One step: `loss()` (forward and cross-entropy), backward, AdamW, gradients cleared."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

    def step() -> None:
        loss().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def interleaved(steps: dict[str, Callable[[], None]], pairs: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    """Seconds per call of each step on every clock of CLOCKS (wall, and this process's CPU time), timed in turn
    (A, B, A, B, ...) `pairs` times after `warmup` calls each: {clock: {step name: [seconds]}}."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    seconds = {clock: {name: [] for name in steps} for clock in CLOCKS}
    for _ in range(pairs):
        for name, step in steps.items():
            start = {clock: now() for clock, now in CLOCKS.items()}
            step()
            for clock, now in CLOCKS.items():
                seconds[clock][name].append(now() - start[clock])
    return seconds


def bench_pair(pair: Pair, authors, args: argparse.Namespace) -> dict:
    """Our model and the authors' for `pair`, timed interleaved; a record with both medians and the ratios."""
    length = pair.length or args.length
    torch.manual_seed(0)
    ours, task = our_model(pair, length)
    ours.train()
    batch = random_batch(task, args.batch, length - 1, torch.device("cpu"))
    config = authors_config(pair, length, int(task["vocab_size"]))
    if pair.attn_type == "nystrom" and length % config["num_landmarks"]:
        raise LRAError(f"--length {length}: the authors' Nystromformer needs a multiple of its "
                       f"{config['num_landmarks']} landmarks (e.g. 2000 for 125)")
    theirs = authors.ModelForSC(config).train()
    ids = torch.cat([batch["input_ids"], batch["input_ids"][:, :1]], dim=1)  # their CLS overwrites the last token
    mask = torch.ones_like(ids, dtype=torch.float)
    label = batch["label"]
    steps = {
        "peer": training_step(theirs, lambda: theirs(ids, mask, label)["loss"].mean()),
        "ours": training_step(ours, lambda: F.cross_entropy(ours(batch), label)),
    }
    seconds = interleaved(steps, args.pairs, args.warmup)
    n_peer, n_ours = count_parameters(theirs), count_parameters(ours)
    return {
        "pair": pair.label, "peer": "nystromformer-lra", "length": length, **summary(seconds, args.clock),
        "peer_params": n_peer, "ours_params": n_ours, "params_ratio": n_ours / n_peer, "differs": pair.differs,
    }


def summary(seconds: dict[str, dict[str, list[float]]], clock: str) -> dict:
    """What a record says of `interleaved`'s timings on `clock`: the medians peer_s and ours_s, each pair's
    peer/ours, and `ratio`, their median. A pair's two steps ran back to back, under about the same load, so the
    median of the pairs' ratios follows a shared machine's load less than the ratio of the two medians does."""
    timed = seconds[clock]
    pair_ratios = [p / o for p, o in zip(timed["peer"], timed["ours"], strict=True)]
    return {
        "clock": clock, "peer_s": statistics.median(timed["peer"]), "ours_s": statistics.median(timed["ours"]),
        "ratio": statistics.median(pair_ratios), "pair_ratios": pair_ratios, "seconds": timed,
        "seconds_by_clock": seconds,
    }


def add_clock_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                   help="what the medians and ratios are taken on: wall time, or this process's CPU time, which "
                   "other load on a shared machine inflates far less (both are recorded in the JSON)")


def format_rows(records: list[dict]) -> str:
    lines = ["| model | peer s/step | ours s/step | peer/ours | pairs' range | params ours/peer |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['pair']} | {r['error']} | | | | |")
            continue
        lines.append(f"| {r['pair']} | {r['peer_s']:.3f} | {r['ours_s']:.3f} | {r['ratio']:.2f} | "
                     f"{min(r['pair_ratios']):.2f}-{max(r['pair_ratios']):.2f} | {r['params_ratio']:.4f} |")
    return "\n".join(lines)


def bench_peers(args: argparse.Namespace) -> dict:
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in PAIRS]
    if unknown:
        raise LRAError(f"--models {','.join(unknown)}: no peer pair; choose from {', '.join(PAIRS)}")
    if not args.peer_dir:
        raise LRAError("--peers needs --peer-dir: a directory holding mlpen/Nystromformer's LRA/code")
    authors = import_authors(args.peer_dir.split(os.pathsep))
    print(f"peers: batch {args.batch}, length {args.length}, {args.warmup} warm-up step(s) each, median of "
          f"{args.pairs} interleaved pairs, {args.clock} clock, {torch.get_num_threads()} thread(s)", flush=True)
    records = []
    for name in names:
        try:
            record = bench_pair(PAIRS[name], authors, args)
        except ImportError as err:  # e.g. the authors' Performer without performer_pytorch installed
            record = {"pair": PAIRS[name].label, "error": f"peer not importable ({err})"}
        records.append(record)
        if "error" in record:
            print(f"  {record['pair']}: {record['error']}", flush=True)
        else:
            print(f"  {record['pair']}: peer {record['peer_s']:.3f} s, ours {record['ours_s']:.3f} s, "
                  f"peer/ours {record['ratio']:.2f} (pairs {min(record['pair_ratios']):.2f}-"
                  f"{max(record['pair_ratios']):.2f}), params {record['ours_params']:,} vs {record['peer_params']:,}",
                  flush=True)
    print("\n" + format_rows(records))
    payload = {"kind": "peers", **environment(torch.device("cpu")), "batch": args.batch, "length": args.length,
               "pairs": args.pairs, "warmup": args.warmup, "clock": args.clock, "results": records}
    write_json(Path(args.out) / "peers.json", payload)
    print(f"wrote {Path(args.out) / 'peers.json'}")
    return payload


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lra.bench --peers", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="transformer,linformer,performer,nystromformer,nystromformer-2048",
                   help="comma-separated pairs: " + ", ".join(PAIRS))
    p.add_argument("--peer-dir", help="directory (or os.pathsep-separated list) with mlpen/Nystromformer's LRA/code")
    p.add_argument("--length", type=int, default=2000,
                   help="positions every layer sees, CLS included (nystromformer-2048: always 2048)")
    p.add_argument("--pairs", type=int, default=5, help="interleaved (peer, ours) timings; medians reported")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--warmup", type=int, default=1, help="untimed steps of each model first")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    add_clock_option(p)
    p.add_argument("--out", default="outputs/bench", help="directory for peers.json")
    return p.parse_args(argv)


# What `--peers` compares against: the Nystromformer authors' LRA code (the default), or HF transformers
# (`--peers hf`, lra.bench.hf_peers).
SOURCES = ("authors", "hf")


def peer_source(argv: list[str]) -> tuple[str, list[str]] | None:
    """(source, the other arguments) when `argv` asks for `--peers [authors|hf]` (or `--peers=SOURCE`); else None."""
    for i, arg in enumerate(argv):
        if arg == "--peers":
            if i + 1 < len(argv) and argv[i + 1] in SOURCES:
                return argv[i + 1], argv[:i] + argv[i + 2 :]
            return "authors", argv[:i] + argv[i + 1 :]
        if arg.startswith("--peers="):
            return arg.split("=", 1)[1], argv[:i] + argv[i + 1 :]
    return None


def main(argv: list[str] | None = None) -> int:
    """Against the Nystromformer authors' code; `python -m lra.bench --peers hf` goes to lra.bench.hf_peers."""
    args = parse_args(argv)
    return run(lambda: bench_peers(args), args.threads)


if __name__ == "__main__":
    sys.exit(main())
