"""Configuration checks before any data is touched: names that conf/ does not have (lra.run.config) and values that
cannot run (lra.run.validate), each one line naming the key."""

import subprocess
import sys

import pytest

from lra.errors import LRAError
from lra.run.config import CONF_DIR, check_choices, compose_train
from lra.run.train import run
from tests.helpers import ROOT, tiny_run_overrides


def test_unknown_task_or_model_lists_the_available_names():
    with pytest.raises(LRAError) as caught:
        check_choices(["task=listopz"], CONF_DIR)
    tasks = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))
    assert str(caught.value) == f"task=listopz is not available; choose one of: {', '.join(tasks)}"
    with pytest.raises(LRAError, match=r"^model=fnett is not available; choose one of: .*fnet, .*transformer"):
        check_choices(["-m", "model=fnet,fnett", "seed=1"], CONF_DIR)
    check_choices(["task=listops", "model=fnet,transformer", "seed=0,1"], CONF_DIR)


def test_the_default_logs_to_wandb_and_csv_and_a_list_picks_several_or_none():
    assert list(compose_train([]).logger) == ["wandb", "csv"]
    assert list(compose_train(["logger=csv"]).logger) == ["csv"]
    assert list(compose_train(["logger=[csv,wandb]"]).logger) == ["csv", "wandb"]
    assert compose_train(["logger=[]"]).get("logger") is None
    with pytest.raises(LRAError, match=r"^logger=tensorboard is not available; choose one of: csv, wandb$"):
        check_choices(["logger=[csv,tensorboard]"], CONF_DIR)
    with pytest.raises(LRAError, match=r"^logger=null: .* write logger=\[\] for none$"):
        check_choices(["logger=null"], CONF_DIR)


def test_unknown_task_from_the_command_line_is_one_line():
    proc = subprocess.run(
        [sys.executable, "train.py", "model=nosuchmodel"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: model=nosuchmodel is not available; choose one of: ")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "overrides, line",
    [
        (["model=transformer", "model.d_model=50", "model.n_heads=4"],
         "model.d_model=50 is not divisible by model.n_heads=4, which Attention needs; change one of them"),
        (["model.n_layers=0"], "model.n_layers=0 must be a positive integer"),
        (["model.d_model=-8"], "model.d_model=-8 must be a positive integer"),
        (["task.batch_size=0"], "task.batch_size=0 must be a positive integer"),
        (["trainer.max_steps=-1"], "trainer.max_steps=-1 must be a positive integer"),
        (["model.d_ff=-1"], "model.d_ff=-1 must be an integer >= 0"),
        (["model.dropout=1.5"], "model.dropout=1.5 must be in [0, 1)"),
        (["model.mixer=nope"], None),
    ],
)
def test_config_rules_fail_before_any_data_is_touched(tmp_path, overrides, line):
    cfg = compose_train([*tiny_run_overrides(tmp_path / "no-data-here", tmp_path / "out"), *overrides])
    with pytest.raises(LRAError) as caught:
        run(cfg)  # the data directory does not exist: only a config check can fail first
    if line is None:
        assert str(caught.value).startswith("model.mixer='nope' is not a mixer; available: ")
    else:
        assert str(caught.value) == line


def test_head_free_mixers_need_no_divisible_width(listops_data, tmp_path):
    cfg = compose_train([*tiny_run_overrides(listops_data, tmp_path / "out"), "model=fnet", "model.d_model=30",
                         "task.max_len=32"])
    run(cfg)


def test_batch_larger_than_the_dataset(listops_data, tmp_path):
    cfg = compose_train([*tiny_run_overrides(listops_data, tmp_path / "out"), "task.batch_size=65"])
    with pytest.raises(LRAError) as caught:
        run(cfg)
    assert str(caught.value) == (
        f"task.batch_size=65 is larger than the training split (64 examples under {listops_data / 'listops-1000'}); "
        "lower task.batch_size"
    )


def test_max_len_smaller_than_the_data(listops_data, tmp_path):
    cfg = compose_train([*tiny_run_overrides(listops_data, tmp_path / "out"), "task.max_len=4"])
    with pytest.raises(LRAError, match=r"basic_train.tsv:\d+: \d+ tokens exceed task.max_len=4; raise task.max_len"):
        run(cfg)


@pytest.mark.parametrize(("override", "message"), [
    ("optim.lr=-0.001", "optim.lr=-0.001 must be a positive number"),
    ("optim.ssm_lr=0", "optim.ssm_lr=0 must be a positive number"),
    ("optim.schedule=cosin", "optim.schedule=cosin is not a schedule; choose one of: rsqrt, cosine, "),
    ("trainer.precision=15-mixed", "trainer.precision=15-mixed is not a precision; choose one of: 64-true, "),
])
def test_optimiser_and_precision_errors_come_before_the_data(tmp_path, override, message):
    """The data directory does not exist: an error after data preparation would name it instead."""
    cfg = compose_train([*tiny_run_overrides(tmp_path / "no-data", tmp_path / "run"), override])
    with pytest.raises(LRAError) as caught:
        run(cfg)
    assert str(caught.value).startswith(message)
    assert not (tmp_path / "run").exists()


def test_a_recipe_written_for_other_models_is_refused_unless_declared_custom(tmp_path):
    base = [*tiny_run_overrides(tmp_path / "no-data", tmp_path / "run"), "experiment=s4/listops"]
    with pytest.raises(LRAError) as caught:
        run(compose_train([*base, "model=transformer"]))
    assert str(caught.value) == (
        "recipe s4/listops was written for model=s4d|lru, not model=transformer; pass recipe=custom to run it "
        "anyway (recorded as custom), or use a recipe for all models (experiment=lra/...)"
    )
    from lra.run.validate import check_config

    check_config(compose_train([*base, "model=transformer", "recipe=custom"]))
    check_config(compose_train([*base, "model=lru"]))


def test_resuming_with_another_model_shape_is_the_fingerprint_refusal(listops_data, tmp_path):
    out = tmp_path / "run"
    run(compose_train(tiny_run_overrides(listops_data, out)))
    with pytest.raises(LRAError, match=r"^the checkpoint was written by a different configuration \(fingerprint "):
        run(compose_train([*tiny_run_overrides(listops_data, out, steps=6), "model.d_model=48", "resume=auto"]))
