"""The LightningModule: cross-entropy, plain (micro) accuracy, AdamW with the LRA schedules."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lra.models.mixers.base import ssm_parameters
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
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        # The validation labels' histogram, for the stuck-at-chance check (lra.run.chance.ChanceWatch).
        self.val_label_counts = torch.zeros(n_classes, dtype=torch.long)
        # LRA reports plain accuracy over examples: micro averaging.
        self.accuracy = nn.ModuleDict(
            {f"{split}_acc": MulticlassAccuracy(n_classes, average="micro") for split in ("train", "val", "test")}
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(batch)

    def step(self, batch: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        logits = self.model(batch)
        loss = F.cross_entropy(logits.float(), batch["label"])
        metric = self.accuracy[f"{split}_acc"]
        metric(logits, batch["label"])
        on_step = split == "train"
        size = batch["label"].shape[0]
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=not on_step, prog_bar=True, batch_size=size)
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


def param_groups(module: nn.Module, lr: float, ssm_lr: float | None) -> list[dict]:
    """Decoupled weight decay on every parameter, as the released LRA (flax) optimizer did, except the ones
    mixers declare in `ssm_params`: those form a second group with `ssm_lr` (None = lr) and no weight decay."""
    ssm = ssm_parameters(module)
    ids = {id(p) for p in ssm}
    groups = [{"params": [p for p in module.parameters() if id(p) not in ids]}]
    if ssm:
        groups.append({"params": ssm, "lr": lr if ssm_lr is None else ssm_lr, "weight_decay": 0.0})
    return groups


def adamw(module: nn.Module, hp, name: str | None = None) -> dict:
    """AdamW with a per-step LR schedule from `hp` (lr, weight_decay, betas, eps, ssm_lr, schedule, warmup_steps,
    total_steps): what `configure_optimizers` returns, for fine-tuning and self-pretraining alike. `name` labels
    the learning rate in the logs (LearningRateMonitor)."""
    optimizer = torch.optim.AdamW(
        param_groups(module, hp.lr, hp.get("ssm_lr")), lr=hp.lr, betas=tuple(hp.betas), eps=hp.eps,
        weight_decay=hp.weight_decay,
    )
    lr_scheduler = scheduler(optimizer, hp.schedule, hp.warmup_steps, hp.total_steps)
    stepped = {"scheduler": lr_scheduler, "interval": "step"}
    if name is not None:
        stepped["name"] = name
    return {"optimizer": optimizer, "lr_scheduler": stepped}
