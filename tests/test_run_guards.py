"""Numeric guards (lra.run.guards): a non-finite loss or weight stops the run with one line, or the step is skipped."""

import json

import pytest
import torch

import lra.run.train
from lra.run.config import compose_train
from lra.run.guards import NonFiniteError
from lra.run.train import run
from tests.helpers import tiny_run_overrides


def poison_at(monkeypatch, step: int, target: str) -> None:
    """Make the model produce NaN at one training step: a weight (`weight`) or only that step's loss (`loss`)."""
    build = lra.run.train.build_model

    def build_poisoned(model_cfg, task_cfg, **options):
        model = build(model_cfg, task_cfg, **options)
        calls = {"n": 0}

        def hook(module, args, output):
            if not module.training:
                return output
            calls["n"] += 1
            if calls["n"] != step:
                return output
            if target == "weight":
                with torch.no_grad():
                    module.head[2].weight.fill_(float("nan"))
                return module.head(module.encoder(args[0]["input_ids"], args[0]["mask"]))
            return output * float("nan")

        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(lra.run.train, "build_model", build_poisoned)


def test_nonfinite_stops_with_one_line_and_keeps_the_last_good_checkpoint(listops_data, tmp_path, monkeypatch):
    poison_at(monkeypatch, step=5, target="weight")
    out = tmp_path / "run"
    cfg = compose_train([*tiny_run_overrides(listops_data, out, steps=8), "checkpoint_every=2", "task.max_len=32"])
    with pytest.raises(NonFiniteError) as caught:
        run(cfg)
    last_good = out / "checkpoints" / "step4.ckpt"
    assert str(caught.value) == (
        f"non-finite training at step 5: loss nan, first non-finite parameter model.head.2.weight (value); "
        f"last good checkpoint: {last_good}; lower optim.lr, set trainer.gradient_clip_val, or pass on_nonfinite=skip"
    )
    state = torch.load(last_good, map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.isfinite(t).all() for t in state.values())


def test_nonfinite_skip_counts_and_continues(listops_data, tmp_path, monkeypatch):
    poison_at(monkeypatch, step=3, target="loss")
    out = tmp_path / "run"
    run(compose_train([*tiny_run_overrides(listops_data, out, steps=6), "on_nonfinite=skip", "task.max_len=32"]))
    results = json.loads((out / "results.json").read_text())
    assert results["skipped_steps"] == 1 and results["step"] == 6
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.isfinite(t).all() for t in state.values())
