"""Experiment loggers: W&B offline unless the user is logged in, plus whatever `logger=` selects."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger, WandbLogger


def wandb_logged_in() -> bool:
    """An API key in the environment or in ~/.netrc (where `wandb login` writes it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def set_wandb_mode() -> str:
    """Decide online/offline before any wandb call; an explicit WANDB_MODE from the user wins."""
    os.environ.setdefault("WANDB_MODE", "online" if wandb_logged_in() else "offline")
    return os.environ["WANDB_MODE"]


def build_loggers(cfg: DictConfig | None) -> list[Logger]:
    """Instantiate every logger under `cfg.logger` (a dict of `_target_` configs, lightning-hydra-template style)."""
    if not cfg:
        return []
    if any("Wandb" in str(c.get("_target_", "")) for c in cfg.values() if c):
        set_wandb_mode()
    return [hydra.utils.instantiate(c) for c in cfg.values() if c and "_target_" in c]


def wandb_run_dir(loggers: list[Logger]) -> Path | None:
    """The local directory of the W&B run (what `wandb sync` uploads), if a W&B logger is active."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            directory = getattr(logger.experiment, "dir", None)
            return Path(directory).parent if directory else None
    return None


def finish_wandb(loggers: list[Logger]) -> None:
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()
