"""`build_datamodule(task config, seed)`: the task's DataModule, as every stage and tool that reads a task builds it
(fine-tuning, self-pretraining, the loader benchmark, the tests)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from lra.data.base import LRADataModule
from lra.errors import LRAError

# Task config keys that describe the task to the model and optimizer rather than configure the DataModule.
TASK_META = ("name", "vocab_size", "n_classes", "dual", "interaction", "recipe")


def build_datamodule(task: DictConfig, seed: int) -> LRADataModule:
    options = {k: v for k, v in OmegaConf.to_container(task, resolve=True).items() if k not in TASK_META}
    try:
        datamodule = hydra.utils.instantiate(options)
    except hydra.errors.InstantiationException as err:
        raise LRAError(f"task config {task.name!r} cannot build its DataModule: {err.__cause__ or err}") from err
    if datamodule.vocab_size != task.vocab_size:
        raise LRAError(f"task.vocab_size={task.vocab_size} but the {task.name} tokenizer has {datamodule.vocab_size}")
    datamodule.seed = seed
    return datamodule
