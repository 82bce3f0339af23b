"""Runs stuck at chance (lra.run.chance): the check itself, a run that cannot learn, and on_chance=restart."""

import json
import math
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.trainer.states import TrainerFn

from lra.errors import LRAError
from lra.run.chance import ChanceWatch, at_chance, attempt, prior
from lra.run.config import compose_train
from lra.run.train import run
from tests.helpers import tiny_run_overrides
from tests.task_fixtures import write_listops


def test_prior_is_the_majority_share_and_the_label_entropy():
    assert prior(torch.tensor([3, 3])) == (0.5, pytest.approx(math.log(2)))
    majority, entropy = prior(torch.tensor([6, 2, 0]))
    assert majority == 0.75 and entropy == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def test_at_chance_needs_both_accuracy_and_loss_at_the_prior():
    assert at_chance(0.51, math.log(2), 0.5, math.log(2), 0.02)
    assert not at_chance(0.60, math.log(2), 0.5, math.log(2), 0.02)  # accuracy above the majority class
    assert not at_chance(0.51, 0.5, 0.5, math.log(2), 0.02)  # loss well below the entropy: it learned something


def validation(watch: ChanceWatch, acc: float, loss: float, step: int) -> SimpleNamespace:
    trainer = SimpleNamespace(
        sanity_checking=False, callback_metrics={"val/acc": torch.tensor(acc), "val/loss": torch.tensor(loss)},
        strategy=SimpleNamespace(reduce=lambda t, reduce_op: t), is_global_zero=True, global_step=step,
        should_stop=False, state=SimpleNamespace(fn=TrainerFn.FITTING),
    )
    watch.on_validation_end(trainer, SimpleNamespace(val_label_counts=torch.tensor([5, 5])))
    return trainer


def test_chance_watch_flags_only_a_streak_of_patience_and_warns_once(capsys):
    watch = ChanceWatch(patience=2, margin=0.02, stop=True, then="stopping")
    chance, learned = (0.5, 0.70), (0.9, 0.30)
    assert not validation(watch, *chance, 2).should_stop
    assert not validation(watch, *learned, 4).should_stop and watch.streak == 0
    assert not validation(watch, *chance, 6).should_stop and not watch.stuck
    assert validation(watch, *chance, 8).should_stop and watch.stuck
    validation(watch, *chance, 10)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "warning: stuck at chance at step 8: 2 validations in a row with val acc 0.5000 (majority class 0.5000) "
        "and val loss 0.7000 (label entropy 0.6931); stopping"
    ]
    restored = ChanceWatch(patience=2, margin=0.02)
    restored.load_state_dict(watch.state_dict())
    assert restored.stuck and restored.warned


def unlearnable(root: Path) -> Path:
    """Tiny ListOps with random labels, half of them 0: nothing in the input predicts them, so the best a model can
    do is the majority class."""
    directory = write_listops(root / "listops-1000", sizes=(("train", 64), ("val", 32), ("test", 16)))
    rng = random.Random(1)
    for path in directory.glob("*.tsv"):
        header, *rows = path.read_text().splitlines()
        labels = ["0" if i % 2 else str(rng.randint(1, 9)) for i in range(len(rows))]
        rng.shuffle(labels)
        sources = [row.rsplit("\t", 1)[0] for row in rows]
        path.write_text("\n".join([header, *(f"{x}\t{y}" for x, y in zip(sources, labels, strict=True))]) + "\n")
    return root


def chance_overrides(data: Path, out: Path, *extra: str) -> list[str]:
    return [*tiny_run_overrides(data, out, steps=8), "task.max_len=32", "chance.patience=2",
            "trainer.deterministic=true", *extra]


def test_a_run_that_cannot_learn_is_flagged_stuck(tmp_path, capsys):
    out = tmp_path / "run"
    run(compose_train(chance_overrides(unlearnable(tmp_path / "data"), out)))
    results = json.loads((out / "results.json").read_text())
    assert results["stuck_at_chance"] is True
    assert (results["seed"], results["first_seed"], results["restarts"], results["step"]) == (0, 0, 0, 8)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "stuck at chance" in line]
    assert len(warnings) == 1 and warnings[0].endswith("continuing (on_chance=restart retries)")


def test_on_chance_restart_trains_again_with_the_next_seed(tmp_path, capsys):
    out = tmp_path / "run"
    data = unlearnable(tmp_path / "data")
    run(compose_train(chance_overrides(data, out, "on_chance=restart", "chance.max_restarts=1")))
    results = json.loads((out / "results.json").read_text())
    assert (results["seed"], results["first_seed"], results["restarts"]) == (1, 0, 1)
    assert results["stuck_at_chance"] is True and results["step"] == 8  # the last attempt runs to the end
    assert list((out / "stuck-seed0").glob("step*.ckpt")), "the stuck attempt's checkpoints are kept"
    assert json.loads((out / "restart.json").read_text()) == {"first_seed": 0, "seed": 1, "restarts": 1}
    captured = capsys.readouterr()
    assert "restart 1 of 1: seed=1" in captured.out
    assert "stopping; restarting with the next seed" in captured.err
    assert "continuing (no restarts left)" in captured.err
    # Resuming the directory continues the restarted attempt (seed 1), not the original seed.
    assert attempt(out, 0, resuming=True) == (1, 1)
    assert attempt(out, 0, resuming=False) == (0, 0)
    with pytest.raises(LRAError, match=r"restart.json belongs to seed=0, this run has seed=5; pass seed=0$"):
        attempt(out, 5, resuming=True)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("on_chance=retry", "on_chance='retry' is not an option; use one of: warn, restart"),
        ("chance.patience=-1", "chance.patience=-1 must be a non-negative integer (chance.patience=0: never check)"),
        ("chance.margin=1.5", "chance.margin=1.5 must be in [0, 1)"),
    ],
)
def test_bad_chance_settings_are_one_line(listops_data, tmp_path, override, message):
    with pytest.raises(LRAError) as caught:
        run(compose_train([*tiny_run_overrides(listops_data, tmp_path / "run"), override]))
    assert str(caught.value) == message
