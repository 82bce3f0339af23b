"""The LightningModule: cross-entropy, plain (micro) accuracy, AdamW with the LRA schedules."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lra.models.mixers.base import declared_parameters
from lra.models.norms import MaskedBatchNorm
from lra.run.schedules import scheduler


class LRATask(pl.LightningModule):
    """Trains any classifier from `lra.models` on batches of the LRA contract."""

    def __init__(
        self,
        model: nn.Module,
        n_classes: int,
        lr: float,
        weight_decay: float,
        schedule: str,
        warmup_steps: int,
        total_steps: int,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-9,
        ssm_lr: float | None = None,
        bias_norm_decay: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        # The validation labels' histogram, for the stuck-at-chance check (lra.run.chance.ChanceWatch).
        self.val_label_counts = torch.zeros(n_classes, dtype=torch.long)
        # LRA reports plain accuracy over examples: micro averaging. validate_args=False: its input checks
        # (torch.unique over the labels) would wait for the device every step.
        self.accuracy = nn.ModuleDict({
            f"{split}_acc": MulticlassAccuracy(n_classes, average="micro", validate_args=False)
            for split in ("train", "val", "test")
        })

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(batch)

    def step(self, batch: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        logits = self.model(batch)
        loss = F.cross_entropy(logits.float(), batch["label"])
        metric = self.accuracy[f"{split}_acc"]
        metric(logits, batch["label"])
        on_step = split == "train"
        size = batch["label"].shape[0]
        # Epoch means averaged over DDP ranks (sync_dist), so decisions on val/loss (on_chance) agree on every rank.
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=not on_step, prog_bar=True, batch_size=size,
                 sync_dist=not on_step)
        self.log(f"{split}/acc", metric, on_step=on_step, on_epoch=not on_step, prog_bar=True, batch_size=size)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.step(batch, "train")

    def on_validation_epoch_start(self) -> None:
        self.val_label_counts = torch.zeros(self.hparams.n_classes, dtype=torch.long, device=self.device)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.val_label_counts += torch.bincount(batch["label"], minlength=self.hparams.n_classes)
        self.step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.step(batch, "test")

    def configure_optimizers(self):
        return adamw(self, self.hparams)


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


def adamw(module: nn.Module, hp, name: str | None = None) -> dict:
    """AdamW with a per-step LR schedule from `hp` (lr, weight_decay, betas, eps, ssm_lr, bias_norm_decay, schedule,
    warmup_steps, total_steps): what `configure_optimizers` returns, for fine-tuning and self-pretraining alike.
    `name` labels the learning rate in the logs (LearningRateMonitor)."""
    groups = param_groups(module, hp.lr, hp.get("ssm_lr"), hp.get("bias_norm_decay", True))
    optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas), eps=hp.eps, weight_decay=hp.weight_decay)
    lr_scheduler = scheduler(optimizer, hp.schedule, hp.warmup_steps, hp.total_steps)
    stepped = {"scheduler": lr_scheduler, "interval": "step"}
    if name is not None:
        stepped["name"] = name
    return {"optimizer": optimizer, "lr_scheduler": stepped}
