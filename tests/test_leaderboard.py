"""The leaderboard: results.json files (and W&B summaries) -> markdown, CSV and PNG beside the published numbers."""

from __future__ import annotations

import csv
import json
import re
import statistics
import sys
import types
from pathlib import Path

import pytest
from PIL import Image

from lra.leaderboard import load, report
from lra.published import (
    ACCURACY,
    AVERAGE_TASKS,
    EFFICIENCY,
    FNET,
    LRA,
    RECIPE_OF_SOURCE,
    TASKS,
    XFORMERS,
    published_row,
)
from lra.run.config import CONF_DIR
from tests.helpers import TINY, train_py
from tests.task_fixtures import write_imdb_snapshot, write_listops

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_result(root: Path, name: str, **fields) -> Path:
    record = {
        "task": "listops", "model": "fnet", "seed": 0, "best_val_acc": 0.5, "test_acc": 0.5, "test_acc_last": 0.5,
        "steps_per_s": 10.0, "peak_memory_mb": 100.0, "n_params": 1000, "step": 8, "config_hash": "aaaa",
        "git_commit": "abc", "recipe": "fnet/listops", "headline": "best",  # per recipe: test_leaderboard_headline.py
    }
    record.update(fields)
    path = root / name / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def read_csv(path: Path) -> dict[tuple[str, str, str], dict]:
    with path.open() as f:
        return {(row["task"], row["model"], row["config_hash"]): row for row in csv.DictReader(f)}


def records(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]


def expected(runs: list[dict], key: str) -> tuple[float, float | None]:
    values = [100 * r[key] for r in runs]
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_published_rows_match_reference():
    for row in ACCURACY:
        assert set(row.accuracy) in (set(TASKS), set(AVERAGE_TASKS)) and row.source in RECIPE_OF_SOURCE
        if row.average is None:
            continue
        computed = row.average5() if row.average_over == 5 else statistics.mean(row.accuracy.values())
        decimals = len(repr(row.average).partition(".")[2])  # the papers' own averages, rounded to what they print
        assert computed == pytest.approx(row.average, abs=0.6 * 10**-decimals), row.label
    assert published_row("transformer", "lra/listops").source == LRA and published_row("fnet", "fnet").source == FNET
    assert [r.accuracy["pathx"] for r in ACCURACY if r.source in (LRA, FNET)] == [None] * 14  # FAIL
    assert published_row("transformer", "lra").text("pathx") == "FAIL"
    assert published_row("fnet", "fnet/text").text("listops") == "35.33"
    # Each protocol's own row, never another's; none for custom runs.
    assert published_row("fnet", "nystrom/listops").accuracy["listops"] == 36.5
    assert published_row("fnet", "xformers/listops").source == XFORMERS
    assert published_row("transformer", "nystrom").accuracy["listops"] == 37.10  # the paper's, not Butterfly_Acc's
    assert published_row("fnet", "lra/listops") is None and published_row("fnet", "custom") is None
    # Every model of the LRA and FNet papers is one of our model configs (S4 and Mega need not be).
    ours = {p.stem for p in (CONF_DIR / "model").glob("*.yaml")}
    assert {r.model for r in ACCURACY if r.source in (LRA, FNET)} <= ours
    transformer = [e for e in EFFICIENCY if e.model == "transformer"]
    assert {e.metric for e in transformer} == {"steps_per_s", "peak_memory_gb"}
    assert next(e for e in transformer if e.source == FNET).values[4096] is None  # OOM


def test_table_numbers_are_the_results_files(tmp_path, capsys):
    runs = tmp_path / "runs"
    for task, model, base in (("listops", "fnet", 0.30), ("listops", "transformer", 0.34), ("text", "fnet", 0.62)):
        for seed in range(3):
            write_result(runs, f"{task}-{model}-{seed}", task=task, model=model, seed=seed,
                         test_acc=base + 0.013 * seed, best_val_acc=base + 0.01 * seed, test_acc_last=base,
                         steps_per_s=5.0 + seed, peak_memory_mb=200.0 * (seed + 1), config_hash=f"h-{task}-{model}")
    # A second configuration of transformer on ListOps with better validation accuracy: shown, marked, not mixed in.
    for seed in range(2):
        write_result(runs, f"tuned-{seed}", model="transformer", seed=seed, test_acc=0.2 + 0.1 * seed,
                     best_val_acc=0.9, config_hash="h-tuned", steps_per_s=None, peak_memory_mb=None)

    out = tmp_path / "board"
    assert report.main([str(runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy at the best-validation checkpoint" in printed
    assert (out / "leaderboard.md").read_text() in printed

    table = read_csv(out / "leaderboard.csv")
    assert {row["recipe"] for row in table.values()} == {"fnet/listops"}
    assert len(table) == 4
    by_config: dict[tuple, list[dict]] = {}
    for r in records(runs):
        by_config.setdefault((r["task"], r["model"], r["config_hash"]), []).append(r)
    for key, group in by_config.items():
        row = table[key]
        mean, std = expected(group, "test_acc")
        assert float(row["test_acc_pct_mean"]) == pytest.approx(mean, rel=1e-12)
        assert (row["test_acc_pct_std"] == "") if std is None else float(row["test_acc_pct_std"]) == pytest.approx(std)
        assert float(row["best_val_acc_pct_mean"]) == pytest.approx(expected(group, "best_val_acc")[0])
        assert int(row["n_runs"]) == len(group) and row["seeds"] == " ".join(str(r["seed"]) for r in group)
        published = published_row(key[1], "fnet").accuracy[key[0]]
        assert float(row["published_pct"]) == published
        assert float(row["diff_pct"]) == pytest.approx(mean - published)

    # Selection on validation: the tuned configuration is the summary's, marked with a dagger; the other stays listed.
    assert table[("listops", "transformer", "h-tuned")]["selected"] == "1"
    assert table[("listops", "transformer", "h-listops-transformer")]["selected"] == "0"
    fnet_mean, fnet_std = expected(by_config[("listops", "fnet", "h-listops-fnet")], "test_acc")
    summary = printed.split("## Summary: fnet")[1].split("## Runs by configuration")[0]
    fnet_row = next(line for line in summary.splitlines() if line.startswith("| **fnet**"))
    assert f"| {fnet_mean:.2f} ± {fnet_std:.2f} (3) |" in fnet_row
    tuned_mean = expected(by_config[("listops", "transformer", "h-tuned")], "test_acc")[0]
    assert f"{tuned_mean:.2f} ± " in summary and "(2) †" in summary
    pub_row = next(line for line in summary.splitlines() if line.startswith("| ↳ published: FNet,"))
    assert f"35.33 (Δ {fnet_mean - 35.33:+.2f})" in pub_row and "| FAIL |" in pub_row
    assert_png(out / "leaderboard.png")


def test_five_task_average_and_path_x_apart(tmp_path):
    runs = tmp_path / "runs"
    accuracy = dict(zip(TASKS, (0.40, 0.65, 0.60, 0.45, 0.75, 0.5), strict=True))
    for task, acc in accuracy.items():
        write_result(runs, task, task=task, model="fnet", test_acc=acc, best_val_acc=acc, config_hash=task)
    out = tmp_path / "board"
    assert report.main([str(runs), "--out", str(out)]) == 0
    lines = (out / "leaderboard.md").read_text().split("## Summary: fnet")[1].splitlines()
    ours = next(line for line in lines if line.startswith("| **fnet**")).split(" | ")
    pub = next(line for line in lines if line.startswith("| ↳ published: FNet,")).split(" | ")
    average = statistics.mean(100 * accuracy[t] for t in AVERAGE_TASKS)  # Path-X left out
    assert ours[6] == f"{average:.2f}" and ours[7].startswith("50.00 (1)")
    fnet_paper = published_row("fnet", "fnet")
    assert pub[6] == f"55.30 (Δ {average - fnet_paper.average5():+.2f})" and pub[7].startswith("FAIL")
    assert_png(out / "leaderboard.png")


def test_stuck_runs_and_restarts_are_counted_and_shown(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_result(runs, "a", seed=0, stuck_at_chance=True, restarts=2)
    write_result(runs, "b", seed=1, stuck_at_chance=False, restarts=1)
    write_result(runs, "c", seed=2)  # written before the check existed: neither stuck nor restarted
    write_result(runs, "other", model="transformer", stuck_at_chance=False, restarts=0)
    write_result(runs, "bad", seed=3, stuck_at_chance="yes")
    out = tmp_path / "board"
    assert report.main([str(runs), "--out", str(out)]) == 0
    assert "stuck_at_chance is 'yes', not true or false" in capsys.readouterr().err
    table = read_csv(out / "leaderboard.csv")
    assert {row["recipe"] for row in table.values()} == {"fnet/listops"}
    fnet, transformer = table[("listops", "fnet", "aaaa")], table[("listops", "transformer", "aaaa")]
    assert (fnet["n_stuck"], fnet["n_restarts"], fnet["n_runs"]) == ("1", "3", "3")
    assert (transformer["n_stuck"], transformer["n_restarts"]) == ("0", "0")
    markdown = (out / "leaderboard.md").read_text()
    summary, detail = markdown.split("## Summary")[1].split("## Runs by configuration")
    fnet_row = next(line for line in summary.splitlines() if line.startswith("| **fnet**"))
    assert "(3) §1 |" in fnet_row
    assert "§" not in next(line for line in summary.splitlines() if line.startswith("| **transformer**"))
    header = next(line for line in detail.splitlines() if line.startswith("| recipe | task "))
    assert header.endswith("| stuck | restarts | hardware |")
    fnet_detail = next(line for line in detail.splitlines() if line.startswith("| fnet/listops | ListOps | fnet |"))
    assert fnet_detail.endswith("| 1 | 3 | – |")


def test_the_machine_behind_steps_per_s_is_shown_and_mixed_machines_are_flagged(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_result(runs, "a", seed=0, hardware="1 x NVIDIA H100 80GB HBM3")
    write_result(runs, "b", seed=1, hardware="1 x NVIDIA H100 80GB HBM3")
    write_result(runs, "c", model="transformer", hardware="1 x NVIDIA H100 80GB HBM3")
    write_result(runs, "d", model="transformer", seed=1, hardware="cpu, 2 threads x 1 process: Xeon")
    write_result(runs, "e", model="transformer", seed=2)  # before results.json recorded it
    write_result(runs, "bad", model="transformer", seed=3, hardware="two\nlines")
    out = tmp_path / "board"
    assert report.main([str(runs), "--out", str(out)]) == 0
    assert "hardware is 'two\\nlines', not a name" in capsys.readouterr().err
    table = read_csv(out / "leaderboard.csv")
    assert table[("listops", "fnet", "aaaa")]["hardware"] == "1 x NVIDIA H100 80GB HBM3"
    assert table[("listops", "transformer", "aaaa")]["hardware"] == "mixed (2)"
    detail = (out / "leaderboard.md").read_text().split("## Runs by configuration")[1]
    assert next(line for line in detail.splitlines() if "| transformer |" in line).endswith("| mixed (2) |")


def test_self_pretrained_runs_are_their_own_row_beside_the_model_from_scratch(tmp_path):
    runs = tmp_path / "runs"
    write_result(runs, "scratch", model="transformer", test_acc=0.4)
    spt = {"objective": "mlm", "steps": 100, "mask_rate": 0.1, "loss": 1.5, "acc": 0.4, "from": None}
    write_result(runs, "spt", model="transformer", test_acc=0.6, config_hash="bbbb", pretrain=spt)
    out = tmp_path / "board"
    assert report.main([str(runs), "--out", str(out)]) == 0
    table = read_csv(out / "leaderboard.csv")
    assert table[("listops", "transformer", "aaaa")]["test_acc_pct_mean"] == "40.0"
    assert table[("listops", "transformer +SPT", "bbbb")]["test_acc_pct_mean"] == "60.0"
    summary = (out / "leaderboard.md").read_text().split("## Summary")[1].split("## Runs by configuration")[0]
    rows = [line for line in summary.splitlines() if line.startswith("| **transformer")]
    assert [row.split("|")[1].strip() for row in rows] == ["**transformer**", "**transformer +SPT**"]


def test_malformed_results_are_skipped_with_one_line_each(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_result(runs, "good")
    bad = {
        "truncated": "{\"task\": \"listops\", ",
        "list": "[1, 2]",
        "missing": json.dumps({"task": "listops", "model": "fnet", "seed": 0}),
        "range": json.dumps({"task": "listops", "model": "fnet", "seed": 0, "config_hash": "x",
                             "best_val_acc": 0.5, "test_acc": 42.0}),
    }
    for name, text in bad.items():
        (runs / name).mkdir()
        (runs / name / "results.json").write_text(text)
    out = tmp_path / "board"
    assert report.main([str(runs), "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(bad)
    for name in bad:
        line = next(line for line in err if f"{runs / name / 'results.json'}:" in line)
        assert line.startswith("skipped ")
    assert "test_acc=42.0 is outside" in "\n".join(err) and "missing config_hash" in "\n".join(err)
    assert [row["n_runs"] for row in read_csv(out / "leaderboard.csv").values()] == ["1"]
    assert "## Notes" in (out / "leaderboard.md").read_text()

    # --strict: the first malformed file is an error, one line, and nothing is written.
    strict_out = tmp_path / "strict"
    assert report.main([str(runs), "--out", str(strict_out), "--strict"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: malformed ") and "results.json" in err[0]
    assert not strict_out.exists()


def test_hostile_records_are_skipped_or_shown_as_text(tmp_path, capsys):
    """Huge numbers, a 5 MB name and a name made of table syntax and HTML: skipped with a line, or escaped so the
    tables keep their shape (every row has its header's cells) and no tag reaches the page."""
    runs = tmp_path / "runs"
    write_result(runs, "good")
    write_result(runs, "markup", model="<img src=x onerror=alert(1)>|evil| \\ `x` [a](b) $x^2")
    skipped = {
        "huge-int": dict(n_params=10**400),
        "huge-speed": dict(steps_per_s=1e308),
        "huge-name": dict(model="m" * 5_000_000),
        "two-lines": dict(model="fnet |\n| injected | row |"),
    }
    for name, fields in skipped.items():
        write_result(runs, name, **fields)
    out = tmp_path / "board"
    assert report.main([str(runs), "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert sorted(line.split(": ", 1)[0] for line in err) == sorted(
        f"skipped {runs / name / 'results.json'}" for name in skipped)
    assert max(len(line) for line in err) < 400
    text = (out / "leaderboard.md").read_text()
    assert "<img" not in text
    assert not [line for line in text.splitlines() if "injected" in line and "skipped" not in line]
    assert r"&lt;img src=x onerror=alert(1)&gt;\|evil\| \\ \`x\` \[a\](b) $x^2" in text
    for block in text.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        cells = {len(re.sub(r"\\.", "", row).split("|")) for row in rows}
        assert len(cells) <= 1, block[:300]
    assert_png(out / "leaderboard.png")


def test_nothing_to_read_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "empty").mkdir()
    assert report.main([str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.strip().startswith("error: no results found in ")
    assert report.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'nowhere'}: no such file or directory; pass run directories (or results.json files)"
    )
    monkeypatch.chdir(tmp_path)  # no outputs/ or multirun/ here
    assert report.main([]) == 1
    assert "no outputs/ or multirun/ here" in capsys.readouterr().err


def test_wandb_offline_is_a_note_not_a_crash(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    (tmp_path / "netrc").write_text("")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    write_result(tmp_path / "runs", "a")
    assert report.main([str(tmp_path / "runs"), "--wandb", "me/lra", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["W&B me/lra: not logged in (run `wandb login` or set WANDB_API_KEY); skipped"]


class FakeApi:
    """wandb.Api's surface that the leaderboard uses: runs(path) -> objects with .id and .summary."""

    summaries: list[dict] = []
    error: Exception | None = None

    def __init__(self, timeout=None) -> None:
        pass

    def runs(self, path):
        if self.error:
            raise self.error
        return [types.SimpleNamespace(id=f"run{i}", summary=s) for i, s in enumerate(self.summaries)]


def test_wandb_summaries_join_the_local_runs_once(tmp_path, capsys, monkeypatch):
    local = json.loads(write_result(tmp_path / "runs", "a", seed=0, test_acc=0.4).read_text())
    monkeypatch.setattr(load, "wandb_logged_in", lambda: True)
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Api=FakeApi))
    FakeApi.summaries = [
        dict(local),  # the same run, uploaded: counted once
        {**local, "seed": 1, "test_acc": 0.6},  # another seed, only on W&B
        {"task": "listops", "model": "fnet", "_step": 3},  # still running: no results yet, ignored
        {**local, "seed": 2, "test_acc": "n/a"},  # malformed: one note
    ]
    out = tmp_path / "o"
    assert report.main([str(tmp_path / "runs"), "--wandb", "me/lra", "--out", str(out)]) == 0
    notes = capsys.readouterr().err.strip().splitlines()
    assert notes == ["skipped wandb:me/lra/run3: test_acc is 'n/a', not a number"]
    row = read_csv(out / "leaderboard.csv")[("listops", "fnet", "aaaa")]
    assert row["n_runs"] == "2" and row["seeds"] == "0 1"
    assert float(row["test_acc_pct_mean"]) == pytest.approx(50.0)

    FakeApi.error = ConnectionError("api.wandb.ai unreachable\nretrying...")
    try:
        assert report.main([str(tmp_path / "runs"), "--wandb", "me/lra", "--out", str(out)]) == 0
    finally:
        FakeApi.error = None
    assert capsys.readouterr().err.strip().splitlines() == [
        "W&B me/lra: cannot read runs (ConnectionError: api.wandb.ai unreachable); skipped"
    ]


def test_multirun_two_tasks_two_models_two_seeds_builds_the_leaderboard(tmp_path, monkeypatch, capsys):
    """`python train.py -m experiment=lra/listops,lra/text model=fnet,transformer seed=0,1` (tiny), then the board."""
    data = tmp_path / "data"
    write_listops(data / "listops-1000")
    write_imdb_snapshot(data / "imdb")
    sweep = tmp_path / "multirun" / "lra-2x2x2"
    code = train_py([
        "-m", "experiment=lra/listops,lra/text", "model=fnet,transformer", "seed=0,1", f"data_dir={data}",
        f"hydra.sweep.dir={sweep}", *TINY,
    ], monkeypatch)
    assert code == 0
    runs = records(sweep)
    assert sorted((r["task"], r["model"], r["seed"]) for r in runs) == sorted(
        (t, m, s) for t in ("listops", "text") for m in ("fnet", "transformer") for s in (0, 1)
    )
    job_dirs = sorted(p.parent.name for p in sweep.rglob("results.json"))
    assert len(set(job_dirs)) == 8 and job_dirs[0] == "0_listops_fnet_seed0"

    out = tmp_path / "board"
    assert report.main([str(sweep), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = read_csv(out / "leaderboard.csv")
    assert {row["recipe"] for row in table.values()} == {"lra/listops", "lra/text"}
    assert len(table) == 4  # the two seeds of each (task, model) share one configuration
    for (task, model, config), row in table.items():
        group = [r for r in runs if (r["task"], r["model"], r["config_hash"]) == (task, model, config)]
        assert [r["seed"] for r in group] == [0, 1] and row["n_runs"] == "2" and row["selected"] == "1"
        mean, std = expected(group, "test_acc")
        assert float(row["test_acc_pct_mean"]) == pytest.approx(mean, rel=1e-12)
        assert float(row["test_acc_pct_std"]) == pytest.approx(std, rel=1e-12, abs=1e-12)
        mean, std = expected(group, "test_acc_last")  # lra/*: the release read the last checkpoint
        assert row["headline_checkpoint"] == "last" and float(row["headline_pct_mean"]) == pytest.approx(mean)
        assert f"{mean:.2f} ± {std:.2f} (2)" in printed
    assert_png(out / "leaderboard.png")


def test_two_recipes_in_one_multirun_each_beside_its_own_published_row(tmp_path, monkeypatch, capsys):
    """`python train.py -m experiment=nystrom/listops,xformers/listops model=fnet,transformer` (tiny): one summary
    per protocol, each row beside that protocol's published number, and --recipe keeps one."""
    data = tmp_path / "data"
    write_listops(data / "listops-1000")
    sweep = tmp_path / "multirun" / "recipes"
    code = train_py([
        "-m", "experiment=nystrom/listops,xformers/listops", "model=fnet,transformer", f"data_dir={data}",
        f"hydra.sweep.dir={sweep}", *TINY,
    ], monkeypatch)
    assert code == 0
    assert sorted(r["recipe"] for r in records(sweep)) == ["nystrom/listops"] * 2 + ["xformers/listops"] * 2

    out = tmp_path / "board"
    assert report.main([str(sweep), "--out", str(out)]) == 0
    markdown = (out / "leaderboard.md").read_text()
    nystrom = markdown.split("## Summary: nystrom")[1].split("## ")[0]
    xformers = markdown.split("## Summary: xformers")[1].split("## ")[0]
    published = {
        block: [line for line in text.splitlines() if line.startswith("| ↳ published:")]
        for block, text in (("nystrom", nystrom), ("xformers", xformers))
    }
    labels = [line.split(",")[0] for line in published["nystrom"]]
    assert labels == ["| ↳ published: FNet", "| ↳ published: Transformer"]
    assert all("Butterfly_Acc" in line for line in published["nystrom"][:1])
    assert "| 36.50 (Δ" in published["nystrom"][0] and "| 37.10 (Δ" in published["nystrom"][1]
    assert all("xformers" in line for line in published["xformers"])
    assert "| 36.29 (Δ" in published["xformers"][0] and "| 37.50 (Δ" in published["xformers"][1]
    table = read_csv(out / "leaderboard.csv")
    assert sorted(float(row["published_pct"]) for row in table.values()) == [36.29, 36.5, 37.1, 37.5]

    only = tmp_path / "only"
    assert report.main([str(sweep), "--out", str(only), "--recipe", "xformers"]) == 0
    text = (only / "leaderboard.md").read_text()
    assert "## Summary: xformers" in text and "## Summary: nystrom" not in text and "Butterfly_Acc" not in text
    assert {row["recipe"] for row in read_csv(only / "leaderboard.csv").values()} == {"xformers/listops"}
    capsys.readouterr()
    assert report.main([str(sweep), "--out", str(only), "--recipe", "skyformer"]) == 1
    assert "--recipe skyformer: no run has that recipe; the runs' recipes: nystrom, xformers" in capsys.readouterr().err


def test_same_counts_one_config_hash_as_another(tmp_path, capsys):
    # Seeds of one configuration whose hashes differ (keys added to the code between the runs): apart by default,
    # one entry of three seeds with --same, and the table says so.
    runs = tmp_path / "runs"
    write_result(runs, "s0", seed=0, test_acc=0.30, config_hash="old0")
    write_result(runs, "s1", seed=1, test_acc=0.40, config_hash="new1")
    write_result(runs, "s2", seed=2, test_acc=0.50, config_hash="new1")
    out = tmp_path / "board"
    assert report.main([str(runs), "--out", str(out)]) == 0
    assert set(read_csv(out / "leaderboard.csv")) == {("listops", "fnet", "old0"), ("listops", "fnet", "new1")}
    assert report.main([str(runs), "--out", str(out), "--same", "old0=new1"]) == 0
    table = read_csv(out / "leaderboard.csv")
    assert list(table) == [("listops", "fnet", "new1")]
    assert table[("listops", "fnet", "new1")]["test_acc_pct_mean"] == "40.0"
    assert "config old0 counted as config new1 (--same)" in (out / "leaderboard.md").read_text()
    with pytest.raises(SystemExit):
        report.main([str(runs), "--out", str(out), "--same", "old0"])
    assert "HASH=AS_HASH" in capsys.readouterr().err
