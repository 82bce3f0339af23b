"""Configuration checks that run before any data is touched: one line per problem, naming the key.

Whether a name exists under conf/ is `lra.run.config.check_choices`; these check the composed values. The model's
own checks (mixer name, options, heads) run when it is built, also before any data is read.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from lra.errors import LRAError
from lra.models.config import checked
from lra.run.schedules import SCHEDULES

# The model's keys come from its schema (lra.models.config); the run's follow them.
POSITIVE = (*checked("positive"), "task.batch_size", "task.max_len", "trainer.max_steps", "checkpoint_every")
NON_NEGATIVE = checked("non_negative")
# What Lightning's Trainer(precision=...) accepts, as strings and as the integers YAML makes of 16, 32, 64.
PRECISIONS = ("64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64", "32", "16", "bf16")


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
    check_optim(cfg)
    check_recipe(cfg)


def check_optim(cfg: DictConfig) -> None:
    """Optimiser, schedule and precision: checked before the data is prepared, not after (Lightning's own errors
    come only when fit starts)."""
    for key in ("optim.lr", "optim.ssm_lr"):
        value = OmegaConf.select(cfg, key)
        if key == "optim.ssm_lr" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise LRAError(f"{key}={value} must be a positive number")
    schedule = OmegaConf.select(cfg, "optim.schedule")
    if schedule not in SCHEDULES:
        raise LRAError(f"optim.schedule={schedule} is not a schedule; choose one of: {', '.join(SCHEDULES)}")
    precision = OmegaConf.select(cfg, "trainer.precision")
    if str(precision) not in PRECISIONS:
        raise LRAError(f"trainer.precision={precision} is not a precision; choose one of: {', '.join(PRECISIONS[:6])}")


def check_recipe(cfg: DictConfig) -> None:
    """A recipe written for some models (experiment=s4/*: the S4D and LRU blocks, no position embedding, batch norm,
    lr 0.01) is refused for another: its results would be recorded under a recipe it does not follow. Declaring
    recipe=custom runs it anyway, recorded as what it is."""
    models = OmegaConf.select(cfg, "recipe_models")
    if models and cfg.recipe != "custom" and cfg.model.name not in models:
        raise LRAError(
            f"recipe {cfg.recipe} was written for model={'|'.join(models)}, not model={cfg.model.name}; pass "
            f"recipe=custom to run it anyway (recorded as custom), or use a recipe for all models (experiment=lra/...)"
        )


def check_dataset_size(datamodule, batch_size: int) -> None:
    size = len(datamodule.datasets["train"])
    if batch_size > size:
        raise LRAError(
            f"task.batch_size={batch_size} is larger than the training split ({size} examples under "
            f"{datamodule.path}); lower task.batch_size"
        )
