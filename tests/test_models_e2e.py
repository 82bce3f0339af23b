"""Every model config trains end to end on ListOps."""

import json

import pytest

from lra.run.config import CONF_DIR, choices, compose_train
from lra.run.train import run
from tests.helpers import tiny_run_overrides


@pytest.mark.parametrize("model", choices(CONF_DIR, "model"))
def test_every_model_trains_a_few_steps(listops_data, tmp_path, model):
    out = tmp_path / "run"
    run(compose_train([f"model={model}", *tiny_run_overrides(listops_data, out, steps=3), "task.max_len=32"]))
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == model and results["step"] == 3
    assert results["n_params"] > 0 and 0.0 <= results["test_acc"] <= 1.0
