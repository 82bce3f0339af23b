"""Encoder + classification head, for single sequences and for Retrieval's pairs (one shared encoder)."""

from __future__ import annotations

import torch
from torch import nn

from lra.errors import LRAError
from lra.models.encoder import Encoder

# How Retrieval combines the two pooled encodings u, v: the paper's [u, v, u*v, u-v], or the release's [u, v]
# (lra_benchmarks/models/layers/common_layers.py, classifier_head_dual), which also has one more hidden layer.
INTERACTIONS = {"paper": 4, "release": 2}


# model.head: mlp = Dense(d_ff) -> ReLU -> Dense(n_classes), the LRA head; linear = one Dense (the release's
# Sinkhorn encoder, lra_benchmarks/models/sinkhorn_transformer/sinkhorn_transformer.py).
HEADS = ("mlp", "linear")


def head(width: int, d_ff: int, n_classes: int, kind: str, release_dual: bool) -> nn.Sequential:
    """The classifier head; the release's dual head has Dense(d_ff // 2) -> ReLU in between."""
    if kind not in HEADS:
        raise LRAError(f"model.head={kind!r} is not a head; use one of: {', '.join(HEADS)}")
    if kind == "linear":
        return nn.Sequential(nn.Linear(width, n_classes))
    if release_dual:
        return nn.Sequential(
            nn.Linear(width, d_ff), nn.ReLU(), nn.Linear(d_ff, d_ff // 2), nn.ReLU(), nn.Linear(d_ff // 2, n_classes)
        )
    return nn.Sequential(nn.Linear(width, d_ff), nn.ReLU(), nn.Linear(d_ff, n_classes))


class Classifier(nn.Module):
    """Pooled encoding (or Retrieval's two, through `interaction`) -> the LRA head."""

    def __init__(
        self,
        encoder: Encoder,
        d_model: int,
        d_ff: int,
        n_classes: int,
        dual: bool,
        interaction: str,
        kind: str = "mlp",
    ) -> None:
        super().__init__()
        if dual and interaction not in INTERACTIONS:
            raise LRAError(f"task.interaction={interaction!r} is not a dual-encoder head; use one of: paper, release")
        self.encoder = encoder
        self.dual = dual
        self.interaction = interaction
        width = d_model * (INTERACTIONS[interaction] if dual else 1)
        self.head = head(width, d_ff, n_classes, kind, release_dual=dual and interaction == "release")

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # `padded`: whether the batch holds padding, known on the host (lra.data.base.to_batch); absent = maybe.
        u = self.encoder(batch["input_ids"], batch["mask"], batch.get("padded", True))
        if not self.dual:
            return self.head(u)
        v = self.encoder(batch["input_ids_2"], batch["mask_2"], batch.get("padded_2", True))
        features = [u, v, u * v, u - v] if self.interaction == "paper" else [u, v]
        return self.head(torch.cat(features, dim=-1))
