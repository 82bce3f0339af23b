"""Every model trains a few optimiser steps as the LRA release ran it (experiment=lra/<task>), on every task."""

from __future__ import annotations

import pytest
import torch

from lra.data.build import build_datamodule
from lra.models import build_model
from lra.run.config import CONF_DIR, choices, compose_train
from tests.helpers import TINY_MODEL
from tests.task_fixtures import MAKERS

MODELS = choices(CONF_DIR, "model")
# The release's 1-layer recipes (Image, Path-X) cannot hold fnet_hybrid's two attention layers.
DEPTH = {"fnet_hybrid": ["model.n_layers=3"]}


@pytest.fixture(scope="module")
def batches(tmp_path_factory) -> dict:
    """One training batch per task, from its fixture files through its real DataModule."""
    out = {}
    for task, make in MAKERS.items():
        root = tmp_path_factory.mktemp(task)
        extra = make(root / "data")
        cfg = compose_train([f"experiment=lra/{task}", f"data_dir={root / 'data'}", "task.batch_size=2",
                             "task.num_workers=0", *extra])
        datamodule = build_datamodule(cfg.task, seed=0)
        datamodule.prepare_data()
        datamodule.setup("fit")
        out[task] = (extra, next(iter(datamodule.train_dataloader())))
    return out


@pytest.mark.parametrize("task", sorted(MAKERS))
@pytest.mark.parametrize("model", MODELS)
def test_release_model_trains_on_task(batches, task, model):
    extra, batch = batches[task]
    cfg = compose_train([f"experiment=lra/{task}", f"model={model}", *TINY_MODEL, *extra, *DEPTH.get(model, [])])
    assert cfg.model.impl == "release" or model in ("fnet", "fnet_hybrid", "linear")
    torch.manual_seed(0)
    net = build_model(cfg.model, cfg.task).train()
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in net.parameters()]
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(net(batch), batch["label"])
        assert torch.isfinite(loss)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True))
