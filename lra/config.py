"""The configs under conf/, composed as `python train.py <overrides>` composes them, for the tools that are not
train.py (the benchmark, the parameter summary, the tests)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from lra.validate import check_choices

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def compose_train(overrides: list[str]) -> DictConfig:
    """The config `python train.py <overrides>` runs with; an unknown task or model name is one LRAError line."""
    check_choices(overrides, CONF_DIR)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)
