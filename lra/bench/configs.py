"""The models and batches the benchmarks time: the configs that `python train.py task=<task> model=<model>`
composes (Hydra's compose API over conf/), at task.max_len = each length.

A model name `<name>-nomix` is `<name>` with every token mixer replaced by one that returns zeros: the cost of the
rest of the model, to see what mixing costs.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lra.errors import LRAError
from lra.models import build_model
from lra.models.mixers import Mixer
from lra.run.config import compose_train
from lra.run.validate import check_config

NOMIX = "-nomix"
# `<model>-attn0`: the model with attention dropout 0, beside the same model as configured (on CPU, attention
# dropout changes which kernel runs: lra.models.mixers.attention.kernel_for).
ATTN0 = "-attn0"


def base_name(name: str) -> str:
    """The conf/model name behind a benchmark model name."""
    return name.removesuffix(NOMIX).removesuffix(ATTN0)


@functools.cache
def composed(task: str, model: str | None = None) -> DictConfig:
    """The config `python train.py task=<task> [model=<model>]` runs with (Hydra's compose API), composed once per
    pair and kept read-only: `train_config` hands out copies."""
    cfg = compose_train([f"task={task}", *([f"model={model}"] if model is not None else [])])
    OmegaConf.set_readonly(cfg, True)
    return cfg


def train_config(task: str, model: str | None = None) -> DictConfig:
    """A writable copy of `composed(task, model)`."""
    cfg = copy.deepcopy(composed(task, model))
    OmegaConf.set_readonly(cfg, False)
    return cfg


class ZeroMixer(Mixer):
    """Stands in for a token mixer in `<name>-nomix` models (benchmark only, not registered): returns zeros."""

    uses_mask = False
    uses_heads = False

    def __init__(self) -> None:
        super().__init__(d_model=0, n_heads=1, max_len=0, dropout=0.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def build(name: str, task: str, length: int) -> tuple[nn.Module, DictConfig]:
    """The model `name` (`<model>` or `<model>-nomix`) as `train.py` builds it for `task` at `length`, and the task
    config."""
    cfg = train_config(task, base_name(name))
    cfg.task.max_len = length
    if name.endswith(ATTN0):
        cfg.model.attn_dropout = 0.0
    check_config(cfg)
    model = build_model(cfg.model, cfg.task)
    if name.endswith(NOMIX):
        for block in model.encoder.blocks:
            block.mixer = ZeroMixer()
    return model, cfg.task


def random_batch(
    task: Mapping, batch: int, length: int, device: torch.device, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random tokens in [1, vocab_size) (never the pad id 0 of the byte tasks), all positions real, random labels:
    a batch shaped like the task, with `input_ids_2`/`mask_2` for a dual (two-document) task. `padded` False, as
    the loader says of a batch without padding (exact attention then runs without a mask)."""
    vocab, n_classes = int(task["vocab_size"]), int(task["n_classes"])
    if vocab < 2 or n_classes < 1:
        raise LRAError(f"task {task.get('name', '?')}: vocab_size={vocab}, n_classes={n_classes}; cannot draw a batch")
    g = torch.Generator().manual_seed(seed)
    out = {"label": torch.randint(0, n_classes, (batch,), generator=g)}
    suffixes = ("", "_2") if task.get("dual", False) else ("",)
    for suffix in suffixes:
        out[f"input_ids{suffix}"] = torch.randint(1, vocab, (batch, length), generator=g)
        out[f"mask{suffix}"] = torch.ones(batch, length, dtype=torch.bool)
    return {**{k: v.to(device) for k, v in out.items()}, **{f"padded{suffix}": False for suffix in suffixes}}
