"""Each protocol's own headline: a recipe declares which checkpoint its authors tested (`headline`), and the
leaderboard ranks its runs by that checkpoint's test accuracy, saying so; both numbers stay in the detail and CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lra.leaderboard import report
from lra.leaderboard.load import parse_run, recipe_checkpoint
from lra.run.config import compose_train


def write(root: Path, name: str, **fields) -> None:
    record = {
        "task": "listops", "model": "transformer", "seed": 0, "best_val_acc": 0.45, "test_acc": 0.40,
        "test_acc_last": 0.30, "config_hash": name, "step": 8,
    }
    record.update(fields)
    (root / name).mkdir(parents=True)
    (root / name / "results.json").write_text(json.dumps(record))


def test_each_recipe_is_ranked_by_the_checkpoint_its_authors_tested(tmp_path, capsys):
    runs = tmp_path / "runs"
    write(runs, "lra", recipe="lra/listops")  # written before results.json had `headline`: from the recipe
    write(runs, "nystrom", recipe="nystrom/listops", test_acc=0.50, test_acc_last=0.20)
    write(runs, "lra-text", recipe="lra/text", task="text", test_acc=0.66, test_acc_last=0.61, headline="last")
    out = tmp_path / "board"
    assert report.main([str(runs), "--out", str(out)]) == 0
    markdown = capsys.readouterr().out
    with (out / "leaderboard.csv").open() as f:
        rows = {row["recipe"]: row for row in csv.DictReader(f)}
    assert (rows["lra/listops"]["headline_checkpoint"], rows["nystrom/listops"]["headline_checkpoint"]) == (
        "last", "best")
    assert float(rows["lra/listops"]["headline_pct_mean"]) == pytest.approx(30.0)
    assert float(rows["nystrom/listops"]["headline_pct_mean"]) == pytest.approx(50.0)
    for recipe, best, last in (("lra/listops", 40.0, 30.0), ("nystrom/listops", 50.0, 20.0)):  # both kept
        assert float(rows[recipe]["test_acc_pct_mean"]) == pytest.approx(best)
        assert float(rows[recipe]["test_acc_last_pct_mean"]) == pytest.approx(last)
    lra = markdown.split("## Summary: lra")[1].split("## ")[0]
    nystrom = markdown.split("## Summary: nystrom")[1].split("## ")[0]
    assert "test accuracy at the last checkpoint" in lra and "| 30.00 (1) | 61.00 (1) |" in lra
    assert "test accuracy at the best-validation checkpoint" in nystrom and "| 50.00 (1) |" in nystrom
    detail = markdown.split("## Runs by configuration")[1]
    assert "| 30.00 | last | 40.00 | 45.00 | 30.00 |" in detail and "| 50.00 | best | 50.00 | 45.00 | 20.00 |" in detail


def test_a_run_records_its_recipes_checkpoint_and_old_records_read_it_from_the_recipe():
    assert compose_train(["experiment=lra/image"]).headline == "last"
    for recipe in ("nystrom/text", "skyformer/listops", "xformers/image", "fourier/retrieval", "s4/pathx"):
        assert compose_train([f"experiment={recipe}"]).headline == "best", recipe
        assert recipe_checkpoint(recipe) == "best"
    assert recipe_checkpoint("lra/pathx") == "last" and recipe_checkpoint("custom") == "best"
    assert recipe_checkpoint("gone/listops") == "best"  # a recipe no longer here: the default
    base = {"task": "text", "model": "fnet", "seed": 0, "config_hash": "h", "best_val_acc": 0.7, "test_acc": 0.6,
            "test_acc_last": 0.5}
    assert parse_run({**base, "recipe": "lra/text"}, "x").headline == 0.5
    assert parse_run({**base, "recipe": "nystrom/text"}, "x").headline == 0.6
    assert parse_run({**base, "recipe": "nystrom/text", "val_is_test": True}, "x").headline == 0.5  # Text's ‡
    with pytest.raises(ValueError, match="headline is 'first'"):
        parse_run({**base, "headline": "first"}, "x")
