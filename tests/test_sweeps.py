"""Experiments, sweeps and scale-out: every experiment composes and builds with every model, a multirun survives a
failing job and groups its W&B runs, DDP trains on 2 CPU processes, Optuna sweeps (when installed), SLURM config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir

from lra.errors import LRAError
from lra.models import build_model
from lra.run.config import CONF_DIR
from lra.run.validate import check_config
from tests.helpers import ROOT, TINY, train_py
from tests.task_fixtures import write_listops

EXPERIMENTS = sorted(
    str(p.relative_to(CONF_DIR / "experiment").with_suffix(""))
    for p in CONF_DIR.glob("experiment/*/*.yaml") if not p.name.startswith("_")  # _base.yaml: a recipe's shared part
)
MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if not p.name.startswith("_"))


def models_for(experiment: str) -> list[str]:
    """The models composed under `experiment`: those with a file of their own there, the recipe's own models and the
    FNet pair (fnet_hybrid's attention layers meet the 1-layer recipes), plus a third of the rest in rotation, so that
    every model composes under every recipe family (lra, fnet, nystrom, ...) without every pair costing a Hydra
    compose (a fifth of a second each, about 900 pairs)."""
    family = experiment.split("/")[0]
    siblings = [e for e in EXPERIMENTS if e.split("/")[0] == family]
    chosen = []
    for index, model in enumerate(MODELS):
        own = (CONF_DIR / "experiment" / experiment / f"{model}.yaml").exists()
        rotation = (index + EXPERIMENTS.index(experiment)) % 3 == 0
        # The family's first experiments take the models that the rotation gives none of the family's experiments.
        uncovered = not any((index + EXPERIMENTS.index(e)) % 3 == 0 for e in siblings)
        if own or rotation or model in ("fnet", "fnet_hybrid", "transformer", "s4d", "lru") or (
            uncovered and siblings.index(experiment) == index % len(siblings)
        ):
            chosen.append(model)
    return chosen


def build(cfg) -> torch.nn.Module:
    """Run the model's constructor; on the meta device (no memory, instant) unless the constructor needs values."""
    try:
        with torch.device("meta"):
            return build_model(cfg.model, cfg.task)
    except (RuntimeError, NotImplementedError) as err:
        if "meta" not in str(err):
            raise
        return build_model(cfg.model, cfg.task)


def test_every_task_has_an_lra_and_an_fnet_experiment():
    tasks = {p.stem for p in (CONF_DIR / "task").glob("*.yaml")}
    for family in ("lra", "fnet"):
        assert {p.stem for p in (CONF_DIR / "experiment" / family).glob("*.yaml")} == tasks, family


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_builds_with_every_model(experiment):
    task = Path(experiment).name
    if not (CONF_DIR / "task" / f"{task}.yaml").exists():
        pytest.skip(f"conf/task/{task}.yaml does not exist yet")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for model in models_for(experiment):
            cfg = compose(config_name="train", overrides=[f"experiment={experiment}", f"model={model}"])
            assert (cfg.task.name, cfg.model.name) == (task, model)
            if cfg.get("recipe_models") and model not in cfg.recipe_models:
                # A recipe written for some models (the S4 files) refuses the others unless declared custom.
                with pytest.raises(LRAError, match=rf"^recipe {experiment} was written for .* pass recipe=custom"):
                    check_config(cfg)
                cfg.recipe = "custom"
            check_config(cfg)  # what train.py checks first: a recipe's values must pass it
            per_model = CONF_DIR / "experiment" / experiment / f"{model}.yaml"
            if per_model.exists():  # the release's settings for this model are what composes
                for key, value in yaml.safe_load(per_model.read_text())["model"].items():
                    assert cfg.model[key] == value, (experiment, model, key)
            layers = cfg.model.n_layers
            if any(not -layers <= i < layers for i in cfg.model.attention_layers):
                # FNet-Hybrid's last-2-layers attention on a 1-layer recipe (Image, Path-X): one clear error.
                outside = r"^model.attention_layers has -?\d+, outside a 1-layer model; use indices in \[-1, 0\]"
                with pytest.raises(LRAError, match=outside):
                    build(cfg)
                continue
            net = build(cfg)
            assert sum(p.numel() for p in net.parameters()) > 0, (experiment, model)


def test_every_model_composes_under_every_recipe_family():
    families = {e.split("/")[0] for e in EXPERIMENTS}
    for family in families:
        covered = {m for e in EXPERIMENTS if e.startswith(family + "/") for m in models_for(e)}
        assert covered == set(MODELS), (family, set(MODELS) - covered)


def test_release_settings_apply_under_the_experiment_only():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        released = compose(config_name="train", overrides=["experiment=lra/image", "model=sinkhorn"])
        plain = compose(config_name="train", overrides=["task=image", "model=sinkhorn"])
        mine = compose(config_name="train", overrides=["experiment=lra/image", "model=sinkhorn", "model.n_layers=3"])
        listops = compose(config_name="train", overrides=["experiment=lra/listops", "model=performer"])
    assert (released.model.d_model, released.model.block_size, released.optim.weight_decay) == (32, 64, 0.7)
    assert (plain.model.d_model, plain.model.block_size, plain.optim.weight_decay) == (128, 50, 0.0)
    assert mine.model.n_layers == 3 and mine.model.d_model == 32  # the command line still wins
    assert listops.model.num_features == 2 and listops.trainer.val_check_interval == 250


def test_failing_job_keeps_the_other_jobs_and_groups_wandb(tmp_path, monkeypatch, capsys):
    """Hydra's basic launcher runs every job of its batch; train.py turns a job's one-line error into a failure of that
    job only, so the sweep finishes the others and then exits 1. Its jobs share the W&B group `<sweep dir name>`."""
    monkeypatch.setenv("WANDB_RUN_GROUP", "")
    monkeypatch.delenv("WANDB_RUN_GROUP")
    write_listops(tmp_path / "data" / "listops-1000")
    sweep = tmp_path / "multirun" / "failing-sweep"
    code = train_py(
        ["-m", f"data_dir={tmp_path / 'missing'},{tmp_path / 'data'}", "model=fnet", f"hydra.sweep.dir={sweep}", *TINY],
        monkeypatch,
    )
    assert code == 1
    assert "error: ListOps not found:" in capsys.readouterr().err
    assert not (sweep / "0_listops_fnet_seed0" / "results.json").exists()
    assert json.loads((sweep / "1_listops_fnet_seed0" / "results.json").read_text())["step"] == 4
    assert os.environ["WANDB_RUN_GROUP"] == "failing-sweep"

    # A single run stays ungrouped and keeps its one-line error.
    monkeypatch.delenv("WANDB_RUN_GROUP")
    assert train_py([f"data_dir={tmp_path / 'missing'}", f"hydra.run.dir={tmp_path / 'single'}", *TINY], monkeypatch)
    assert "WANDB_RUN_GROUP" not in os.environ


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_ddp_two_cpu_processes(tmp_path):
    """SLOW-ish (~10 s): trainer=ddp with 2 CPU processes (gloo), a few steps, through the real entry point."""
    write_listops(tmp_path / "data" / "listops-1000")
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "train.py", "trainer=ddp", "trainer.devices=2", f"data_dir={tmp_path / 'data'}",
         f"output_dir={out}", f"hydra.run.dir={out}", *TINY],
        cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MEMBER: 2/2" in proc.stderr + proc.stdout  # Lightning started the second process
    results = json.loads((out / "results.json").read_text())
    assert results["step"] == 4 and 0.0 <= results["test_acc"] <= 1.0


def test_optuna_sweep_two_trials(tmp_path, monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the `sweep` extra is not installed")
    write_listops(tmp_path / "data" / "listops-1000")
    sweep = tmp_path / "optuna"
    code = train_py(
        ["hparams_search=optuna", "hydra.sweeper.n_trials=2", "experiment=lra/listops", "model=fnet",
         f"data_dir={tmp_path / 'data'}", f"hydra.sweep.dir={sweep}", *TINY],
        monkeypatch,
    )
    assert code == 0
    trials = [json.loads(p.read_text()) for p in sorted(sweep.rglob("results.json"))]
    assert len(trials) == 2 and len({t["config_hash"] for t in trials}) == 2  # two different lr/wd/dropout draws
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(t["best_val_acc"] for t in trials)
    assert set(best["best_params"]) == {"optim.lr", "optim.weight_decay", "model.dropout"}
    assert 1e-4 <= best["best_params"]["optim.lr"] <= 0.1


def test_slurm_launcher_follows_the_ddp_trainer():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="train", return_hydra_config=True,
            overrides=["hydra/launcher=submitit_slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"],
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (4, 4, 2)
    assert (cfg.trainer.strategy, cfg.trainer.devices, cfg.trainer.num_nodes) == ("ddp", 4, 2)
    try:
        from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
    except ImportError:
        return  # the `slurm` extra is not installed: the keys are checked against the plugin's schema there
    assert set(launcher) - {"_target_"} <= set(SlurmQueueConf.__dataclass_fields__)
