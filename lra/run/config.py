"""The configs under conf/, composed as `python train.py <overrides>` composes them, for the tools that are not
train.py (the benchmark, the parameter summary, the tests), and the check that an override names a config that
exists: both know only conf/'s layout, nothing of what the configs build."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from lra.errors import LRAError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
GROUPS = ("task", "model", "trainer", "logger", "pretrain", "experiment", "hparams_search")


def choices(conf_dir: Path, group: str) -> list[str]:
    """The config names of one group (`experiment` names nest: `lra/listops`); `_`-files are bases, not choices."""
    root = conf_dir / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml") if not p.name.startswith("_"))


def check_choices(overrides: list[str], conf_dir: Path) -> None:
    """`task=foo`, `model=a,b` (a sweep) or `logger=[a,b]` (several at once) naming a config that does not exist: one
    line with the available names."""
    for override in overrides:
        key, sep, value = override.partition("=")
        group = key.lstrip("+")
        if group == "logger" and value == "null":  # the default is a list, which Hydra cannot set to null
            raise LRAError("logger=null: the default logs to several loggers; write logger=[] for none")
        if not sep or group not in GROUPS or "(" in value or value in ("null", ""):
            continue
        available = choices(conf_dir, group)
        for name in value.removeprefix("[").removesuffix("]").split(","):
            if name and name not in available:
                raise LRAError(f"{group}={name} is not available; choose one of: {', '.join(available)}")


def compose_train(overrides: list[str]) -> DictConfig:
    """The config `python train.py <overrides>` runs with; an unknown task or model name is one LRAError line."""
    check_choices(overrides, CONF_DIR)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)
