"""Every LRA task end to end: the real task configs, tiny source files in the real formats, a few CPU steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lra.train import run
from tests.conftest import compose_train, tiny_run_overrides
from tests.task_fixtures import write_aan, write_cifar_pickles, write_imdb_snapshot, write_pathfinder


def text_data(root: Path) -> list[str]:
    write_imdb_snapshot(root / "imdb")
    return ["task.max_len=48"]


def retrieval_data(root: Path) -> list[str]:
    write_aan(root / "tsv_data")
    return ["task.max_len=48"]


def image_data(root: Path) -> list[str]:
    write_cifar_pickles(root / "cifar-10-batches-py", per_batch=2, n_test=4)
    return []  # 32x32 = 1024 tokens: the real length, still fast at this model size


def pathfinder_data(root: Path) -> list[str]:
    write_pathfinder(root / "pathfinder32", side=32, per_dir=8)
    return []


def pathx_data(root: Path) -> list[str]:
    # 16x16 stand-ins (task.max_len=256): 128x128 = 16384 tokens would not fit a CPU test.
    write_pathfinder(root / "pathfinder128", side=16, per_dir=8)
    return ["task.max_len=256"]


DATA = {
    "text": text_data,
    "retrieval": retrieval_data,
    "image": image_data,
    "pathfinder": pathfinder_data,
    "pathx": pathx_data,
}
CASES = [(task, model, None) for task in DATA for model in ("fnet", "transformer")] + [
    ("retrieval", "fnet", "release"),
    ("retrieval", "transformer", "release"),
]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these models are tiny, and on a shared 2-core machine more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("task, model, interaction", CASES)
def test_task_trains_and_records_results(tmp_path, task, model, interaction):
    data_dir = tmp_path / "data"
    extra = DATA[task](data_dir)
    if interaction:
        extra.append(f"task.interaction={interaction}")
    out = tmp_path / "run"
    cfg = compose_train([f"task={task}", f"model={model}", *tiny_run_overrides(data_dir, out), *extra])
    best_val = run(cfg)
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == task and results["model"] == model and results["step"] == 4
    assert results["best_val_acc"] == best_val
    for key in ("best_val_acc", "test_acc", "test_acc_last"):
        assert 0.0 <= results[key] <= 1.0
    assert any((data_dir / ".cache").iterdir()), "the token cache lives under data_dir"


def test_retrieval_heads_differ(tmp_path):
    """The interaction key reaches the model: the paper's head reads 4 * d_model features, concat 2 * d_model."""
    from lra.models import build_model

    widths = {}
    for interaction in ("paper", "release"):
        cfg = compose_train(["task=retrieval", "model=fnet", f"task.interaction={interaction}", "model.d_model=32"])
        widths[interaction] = build_model(cfg.model, cfg.task).head[0].in_features
    assert widths == {"paper": 128, "release": 64}
