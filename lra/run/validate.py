"""Configuration checks that run before any data is touched: one line per problem, naming the key.

Whether a name exists under conf/ is `lra.run.config.check_choices`; these check the composed values. The model's
own checks (mixer name, options, heads) run when it is built, also before any data is read.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from lra.errors import LRAError
from lra.models.config import checked

# The model's keys come from its schema (lra.models.config); the run's follow them.
POSITIVE = (*checked("positive"), "task.batch_size", "task.max_len", "trainer.max_steps", "checkpoint_every")
NON_NEGATIVE = checked("non_negative")


def check_config(cfg: DictConfig) -> None:
    for key in POSITIVE:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise LRAError(f"{key}={value} must be a positive integer")
    for key in NON_NEGATIVE:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise LRAError(f"{key}={value} must be an integer >= 0")
    if cfg.get("headline", "best") not in ("best", "last"):
        raise LRAError(f"headline={cfg.headline} is not a checkpoint; use best (validation) or last")
    for key in checked("fraction"):
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
