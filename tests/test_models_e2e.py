"""Every model config trains end to end on ListOps, and the parameter summary covers them all."""

import json

import pytest

from lra.config import CONF_DIR
from lra.models.__main__ import main as models_main
from lra.train import run
from lra.validate import choices
from tests.conftest import compose_train, tiny_run_overrides


@pytest.mark.parametrize("model", choices(CONF_DIR, "model"))
def test_every_model_trains_a_few_steps(listops_data, tmp_path, model):
    out = tmp_path / "run"
    run(compose_train([f"model={model}", *tiny_run_overrides(listops_data, out, steps=3), "task.max_len=32"]))
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == model and results["step"] == 3
    assert results["n_params"] > 0 and 0.0 <= results["test_acc"] <= 1.0


def test_summary_lists_every_model(capsys):
    models_main(["--summary", "task=listops", "task.max_len=64", "model.d_model=32", "model.n_heads=4",
                 "model.d_ff=64", "model.n_layers=2"])
    table = capsys.readouterr().out
    for name in choices(CONF_DIR, "model"):
        assert f"| {name} |" in table
    assert "| transformer | " in table and " 1.000 | yes |" in table
