"""The optimiser of both training stages: one settings object (`OptimSettings`) and AdamW with the LRA schedules."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lra.models.mixers.base import declared_parameters
from lra.models.norms import MaskedBatchNorm
from lra.run.schedules import scheduler


@dataclass(frozen=True)
class OptimSettings:
    """What both LightningModules (lra.run.task.LRATask, lra.run.pretrain.MaskedLM) optimise with: conf/train.yaml's
    `optim`, over `total_steps` (pretrain.* replaces lr, weight_decay, schedule and warmup_steps for pretraining)."""

    lr: float
    weight_decay: float
    schedule: str
    warmup_steps: int
    total_steps: int
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    ssm_lr: float | None = None
    bias_norm_decay: bool = True

    @classmethod
    def from_config(cls, optim: DictConfig, total_steps: int, **replaced) -> OptimSettings:
        return cls(**{**OmegaConf.to_container(optim, resolve=True), "total_steps": total_steps, **replaced})

    def hparams(self) -> dict:
        """The settings as the modules' saved hyperparameters (plain values: checkpoints load with weights_only)."""
        return asdict(self)


NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, MaskedBatchNorm)


def param_groups(
    module: nn.Module, lr: float, ssm_lr: float | None, bias_norm_decay: bool = True
) -> list[dict]:
    """Decoupled weight decay on every parameter, as the released LRA (flax) optimizer did, except:

    - the parameters mixers declare in `ssm_params`: their own group at `ssm_lr` (None = lr), no weight decay;
    - those declared in `no_decay_params`, and with `bias_norm_decay=False` every bias and every norm's weight (the
      S4 code's default grouping): a group at `lr` without weight decay.
    Empty groups are left out, so a Transformer has one group."""
    ssm = declared_parameters(module, "ssm_params")
    taken = {id(p) for p in ssm}
    no_decay = declared_parameters(module, "no_decay_params")
    if not bias_norm_decay:
        no_decay += [p for owner in module.modules() for name, p in owner.named_parameters(recurse=False)
                     if isinstance(owner, NORMS) or name == "bias"]
    unique = {id(p): p for p in no_decay if id(p) not in taken}  # an SSM parameter stays in the SSM group
    taken |= set(unique)
    groups = [{"params": [p for p in module.parameters() if id(p) not in taken]}]
    if unique:
        groups.append({"params": list(unique.values()), "weight_decay": 0.0})
    if ssm:
        groups.append({"params": ssm, "lr": lr if ssm_lr is None else ssm_lr, "weight_decay": 0.0})
    return groups


def adamw(module: nn.Module, hp: OptimSettings, name: str | None = None) -> dict:
    """AdamW with a per-step LR schedule from `hp`: what `configure_optimizers` returns, for fine-tuning and
    self-pretraining alike. `name` labels the learning rate in the logs (LearningRateMonitor)."""
    groups = param_groups(module, hp.lr, hp.ssm_lr, hp.bias_norm_decay)
    optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas), eps=hp.eps, weight_decay=hp.weight_decay)
    lr_scheduler = scheduler(optimizer, hp.schedule, hp.warmup_steps, hp.total_steps)
    stepped = {"scheduler": lr_scheduler, "interval": "step"}
    if name is not None:
        stepped["name"] = name
    return {"optimizer": optimizer, "lr_scheduler": stepped}
