"""Configuration checks that run before any data is touched: one line per problem, naming the key.

The model's own checks (mixer name, options, heads) run when it is built, also before any data is read."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lra.errors import LRAError

POSITIVE = (
    "model.n_layers", "model.d_model", "model.n_heads", "model.d_ff", "task.batch_size", "task.max_len",
    "trainer.max_steps", "checkpoint_every",
)
GROUPS = ("task", "model", "trainer", "logger", "experiment", "hparams_search")


def choices(conf_dir: Path, group: str) -> list[str]:
    root = conf_dir / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml") if not p.name.startswith("_"))


def check_choices(overrides: list[str], conf_dir: Path) -> None:
    """`task=foo` or `model=a,b` naming a config that does not exist: one line with the available names."""
    for override in overrides:
        key, sep, value = override.partition("=")
        group = key.lstrip("+")
        if not sep or group not in GROUPS or "(" in value or value in ("null", ""):
            continue
        available = choices(conf_dir, group)
        for name in value.split(","):
            if name not in available:
                raise LRAError(f"{group}={name} is not available; choose one of: {', '.join(available)}")


def check_config(cfg: DictConfig) -> None:
    for key in POSITIVE:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise LRAError(f"{key}={value} must be a positive integer")
    for key in ("model.dropout", "model.attn_dropout"):
        value = OmegaConf.select(cfg, key)
        if not isinstance(value, int | float) or not 0 <= value < 1:
            raise LRAError(f"{key}={value} must be in [0, 1)")


def check_dataset_size(datamodule, batch_size: int) -> None:
    size = len(datamodule.datasets["train"])
    if batch_size > size:
        raise LRAError(
            f"task.batch_size={batch_size} is larger than the training split ({size} examples under "
            f"{datamodule.path}); lower task.batch_size"
        )
