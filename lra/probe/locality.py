"""`python -m lra.probe.locality <run dir or checkpoint> --windows 8,32,128,512`: how long is the range a trained
model uses? Its test accuracy with every mixer's reach cut to |i - j| <= w (the mixer contract's `restrict`),
beside the full model's, written into the run directory as locality.json, locality.md and locality.png.

A mixer that cannot be restricted keeps its full reach and is named in a line (and in the table). Each layer is cut
to w, so a model of n layers still reaches n * w positions through the stack; the pooling (mean over every
position, or the CLS token's layer-by-layer view) is left as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lra.atomic import atomic_file, write_text
from lra.errors import LRAError
from lra.models import build_model
from lra.run.checkpoints import LAST

OUTPUTS = ("locality.json", "locality.md", "locality.png")


def restrict_model(model: nn.Module, window: int | None) -> tuple[list[str], list[str]]:
    """Every block's mixer cut to `window` (None: full reach); the layers restricted and the layers skipped."""
    done, skipped = [], []
    for index, block in enumerate(model.encoder.blocks):
        (done if block.mixer.restrict(window) else skipped).append(f"layer {index}: {type(block.mixer).__name__}")
    return done, skipped


@torch.no_grad()
def accuracy(model: nn.Module, batches: Iterable[dict[str, torch.Tensor]], device: torch.device) -> float:
    """Plain accuracy over every example of `batches` (model in eval mode)."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    total = 0
    for batch in batches:
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}  # `padded`: a host flag
        correct += (model(batch).argmax(-1) == batch["label"]).sum()
        total += batch["label"].shape[0]
    if not total:
        raise LRAError("the test split is empty: nothing to probe")
    return correct.item() / total


def probe(
    model: nn.Module, batches: Sequence[dict[str, torch.Tensor]], windows: list[int], device: torch.device
) -> dict:
    """The full model's accuracy and its accuracy at each window; the restricted and skipped layers."""
    model.to(device)
    restrict_model(model, None)
    full = accuracy(model, batches, device)
    done, skipped = restrict_model(model, windows[0])
    if not done:
        raise LRAError(f"no mixer of this model can be restricted ({', '.join(skipped)}): its reach cannot be probed")
    by_window = []
    for window in windows:
        restrict_model(model, window)
        by_window.append({"window": window, "test_acc": accuracy(model, batches, device)})
    restrict_model(model, None)
    return {"full_test_acc": full, "windows": by_window, "restricted": done, "skipped": skipped}


def find_run(target: Path) -> tuple[Path, Path]:
    """A run directory or a checkpoint in one -> (run directory, checkpoint): a directory's best-val checkpoint
    (the one its results.json test accuracy is at), else its last."""
    if target.is_file():
        run_dir = target.parent.parent if target.parent.name == "checkpoints" else target.parent
        return run_dir, target
    if not target.is_dir():
        raise LRAError(f"{target} is neither a run directory nor a checkpoint file")
    best = sorted((target / "checkpoints").glob("best-step*.ckpt"))
    last = target / "checkpoints" / f"{LAST}.ckpt"
    if best or last.exists():
        return target, best[-1] if best else last
    raise LRAError(f"{target}: no checkpoints/best-step*.ckpt or checkpoints/{LAST}.ckpt; pass a checkpoint file")


def run_config(run_dir: Path, data_dir: str | None, config: Path | None = None) -> DictConfig:
    """The run's composed config: `config`, else Hydra's .hydra/config.yaml or a committed config.yaml beside it."""
    for path in [config] if config else [run_dir / ".hydra" / "config.yaml", run_dir / "config.yaml"]:
        if path.exists():
            cfg = OmegaConf.load(path)
            if data_dir is not None:
                cfg.data_dir = data_dir
            return cfg
    raise LRAError(
        f"{config or run_dir}: no run config (.hydra/config.yaml or config.yaml) to rebuild the model from; pass "
        "--config <hydra.run.dir>/.hydra/config.yaml (a run started with output_dir=... keeps it under hydra.run.dir)"
    )


def load_model(cfg: DictConfig, checkpoint: Path) -> nn.Module:
    """The classifier of `cfg` with the checkpoint's weights (a self-pretrained run's [MASK] row included)."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise LRAError(f"{checkpoint} cannot be loaded as a checkpoint ({type(err).__name__}: {err})") from err
    weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    rows = weights.get("encoder.embed.tokens.weight")
    mask_token = rows is not None and rows.shape[0] == cfg.task.vocab_size + 1
    model = build_model(cfg.model, cfg.task, mask_token=mask_token)
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise LRAError(f"{checkpoint} does not fit the model of its run's config: {str(err).splitlines()[0]}") from err
    return model


def test_batches(cfg: DictConfig) -> list[dict[str, torch.Tensor]]:
    from lra.data.build import build_datamodule

    datamodule = build_datamodule(cfg.task, int(cfg.seed))
    datamodule.prepare_data()
    datamodule.setup("test")
    return list(datamodule.test_dataloader())


def markdown(record: dict) -> str:
    lines = [
        f"# Locality probe: {record['model']} on {record['task']} ({record['recipe']})",
        "",
        f"Checkpoint `{record['checkpoint']}`; every mixer's reach cut to |i - j| <= w per layer "
        f"({record['n_layers']} layers: up to {record['n_layers']} w through the stack).",
        "",
        "| window w | test acc % |",
        "|---|---|",
        *(f"| {row['window']} | {100 * row['test_acc']:.2f} |" for row in record["windows"]),
        f"| full | {100 * record['full_test_acc']:.2f} |",
        "",
    ]
    if record["skipped"]:
        lines += [f"Not restricted (full reach kept): {', '.join(record['skipped'])}.", ""]
    return "\n".join(lines)


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    windows = [row["window"] for row in record["windows"]]
    ax.plot(windows, [100 * row["test_acc"] for row in record["windows"]], "o-", label="reach cut to w")
    ax.axhline(100 * record["full_test_acc"], color="k", linestyle="--", label="full model")
    if min(windows) > 0:
        ax.set_xscale("log", base=2)
    ax.set_xticks(windows, [str(w) for w in windows])
    ax.minorticks_off()
    ax.set_xlabel("window w (positions each side, per layer)")
    ax.set_ylabel("test accuracy %")
    ax.set_title(f"{record['model']} on {record['task']}: accuracy against reach", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write(record: dict, run_dir: Path) -> None:
    write_text(run_dir / OUTPUTS[0], json.dumps(record, indent=2) + "\n")
    write_text(run_dir / OUTPUTS[1], markdown(record))
    plot(record, run_dir / OUTPUTS[2])


def windows_arg(text: str) -> list[int]:
    try:
        windows = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not windows or windows[0] < 0:
        raise argparse.ArgumentTypeError(f"windows must be integers >= 0, got {text!r}")
    return windows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lra.probe.locality", description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="a run directory (its best-val checkpoint) or a checkpoint file")
    parser.add_argument("--windows", type=windows_arg, default=[8, 32, 128, 512], help="e.g. 8,32,128,512")
    parser.add_argument("--config", type=Path, help="the run's config.yaml (default: in or beside the run directory)")
    parser.add_argument("--data-dir", help="where the task's data lives now (default: the run's data_dir)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    try:
        run_dir, checkpoint = find_run(args.target)
        cfg = run_config(run_dir, args.data_dir, args.config)
        model = load_model(cfg, checkpoint)
        result = probe(model, test_batches(cfg), args.windows, torch.device(args.device))
        for line in result["skipped"]:
            print(f"{line} cannot be restricted: it keeps its full reach")
        results_json = run_dir / "results.json"
        record = {
            "task": cfg.task.name, "model": cfg.model.name, "recipe": cfg.get("recipe", "custom"),
            "checkpoint": str(checkpoint), "n_layers": len(model.encoder.blocks),
            "results_test_acc": json.loads(results_json.read_text()).get("test_acc") if results_json.exists() else None,
            **result,
        }
        write(record, run_dir)
    except LRAError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(markdown(record))
    print(f"wrote {', '.join(str(run_dir / name) for name in OUTPUTS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
