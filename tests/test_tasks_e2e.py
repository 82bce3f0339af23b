"""Every task config end to end: conf/task/<t>.yaml, tiny source files in the real formats (the task's fixture maker
in task_fixtures.py), a few CPU steps. A new task config is covered by adding its fixture maker."""

from __future__ import annotations

import json

import pytest
import torch

from lra.run.config import CONF_DIR, choices, compose_train
from lra.run.train import run
from tests.helpers import tiny_run_overrides
from tests.task_fixtures import MAKERS

TASKS = choices(CONF_DIR, "task")
CASES = [(task, model, None) for task in TASKS for model in ("fnet", "transformer", "conv")] + [
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
    if task not in MAKERS:
        pytest.fail(f"conf/task/{task}.yaml has no fixture maker: add one to MAKERS in tests/task_fixtures.py")
    data_dir = tmp_path / "data"
    extra = MAKERS[task](data_dir)
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


@pytest.mark.parametrize("task, model", [(task, model) for task in TASKS for model in ("s4d", "lru")])
def test_state_space_models_train_under_their_recipe_on_every_task(tmp_path, task, model):
    """S4D and the LRU under experiment=s4/<task>, block shape as the recipe has it (no feed-forward branch, batch
    norm, the LRU's one direction or two), on every task's fixture files."""
    if task not in MAKERS:
        pytest.fail(f"conf/task/{task}.yaml has no fixture maker: add one to MAKERS in tests/task_fixtures.py")
    data_dir = tmp_path / "data"
    extra = MAKERS[task](data_dir)
    out = tmp_path / "run"
    tiny = [o for o in tiny_run_overrides(data_dir, out) if not o.startswith("model.d_ff=")]
    cfg = compose_train([f"experiment=s4/{task}", f"model={model}", *tiny, "model.d_state=4", "optim.warmup_steps=1",
                         *extra])
    assert (cfg.model.d_ff, cfg.model.norm_type, cfg.model.pos) == (0, "batch", "none")
    run(cfg)
    results = json.loads((out / "results.json").read_text())
    assert (results["recipe"], results["model"], results["step"]) == (f"s4/{task}", model, 4)
    assert 0.0 <= results["test_acc"] <= 1.0


def test_every_fixture_maker_has_a_task_config():
    assert set(MAKERS) <= set(TASKS), f"fixture makers without a conf/task config: {sorted(set(MAKERS) - set(TASKS))}"


def test_retrieval_heads_differ(tmp_path):
    """The interaction key reaches the model: the paper's head reads 4 * d_model features, concat 2 * d_model."""
    from lra.models import build_model

    widths = {}
    for interaction in ("paper", "release"):
        cfg = compose_train(["task=retrieval", "model=fnet", f"task.interaction={interaction}", "model.d_model=32"])
        widths[interaction] = build_model(cfg.model, cfg.task).head[0].in_features
    assert widths == {"paper": 128, "release": 64}
