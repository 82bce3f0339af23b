"""The LightningModule: cross-entropy, plain (micro) accuracy, AdamW with the LRA schedules (lra.run.optim)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lra.run.optim import OptimSettings, adamw


class LRATask(pl.LightningModule):
    """Trains any classifier from `lra.models` on batches of the LRA contract."""

    def __init__(
        self,
        model: nn.Module,
        n_classes: int,
        optim: OptimSettings,
    ) -> None:
        super().__init__()
        self.save_hyperparameters({"n_classes": n_classes, **optim.hparams()})
        self.optim = optim
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
        return adamw(self, self.optim)
