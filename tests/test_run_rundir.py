"""No start of a run directory, refused or accepted, deletes or rewrites what the run wrote (lra.run.rundir,
lra.run.loggers.AppendingWriter): metrics kept and appended to, the first start's .hydra/ kept, a finished run
submitted again left alone, a moved run resumable, one live process per directory, a resume line safe to paste."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from lra.errors import LRAError
from lra.run.config import compose_train
from lra.run.rundir import claimed, resume_override
from lra.run.train import run
from tests.helpers import tiny_run_overrides, train_py


def snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the run directory: contents and mtime (a rewrite with equal contents still shows)."""
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def metrics(out: Path) -> list[str]:
    return (out / "csv" / "metrics.csv").read_text().splitlines()


@pytest.fixture
def finished(listops_data, tmp_path) -> tuple[list[str], Path]:
    out = tmp_path / "run"
    overrides = [*tiny_run_overrides(listops_data, out, steps=6), "trainer.log_every_n_steps=1"]
    run(compose_train(overrides))
    return overrides, out


def test_a_finished_run_submitted_again_is_a_no_op(finished, capsys):
    overrides, out = finished
    before = snapshot(out)
    best = run(compose_train([*overrides, "resume=auto"]))
    assert snapshot(out) == before
    assert best == json.loads((out / "results.json").read_text())["best_val_acc"]
    assert f"{out} finished at step 6 before: nothing to do" in capsys.readouterr().out


def test_a_refused_start_changes_nothing(finished):
    overrides, out = finished
    before = snapshot(out)
    with pytest.raises(LRAError, match="different configuration"):
        run(compose_train([*overrides, "model.dropout=0.3", "resume=auto"]))
    with pytest.raises(LRAError, match="different configuration"):  # not finished yet: refused when loading
        run(compose_train([*overrides, "model.dropout=0.3", "trainer.max_steps=8", "resume=auto"]))
    with pytest.raises(LRAError, match="already holds checkpoints"):
        run(compose_train(overrides))
    assert snapshot(out) == before


def test_a_resume_appends_to_the_metrics_log(finished):
    overrides, out = finished
    first = metrics(out)
    run(compose_train([*overrides, "trainer.max_steps=10", "resume=auto"]))
    now = metrics(out)
    assert now[0].split(",") == first[0].split(",")
    assert now[: len(first)] == first and len(now) > len(first)
    steps = [int(line.split(",")[first[0].split(",").index("step")]) for line in now[1:]]
    assert steps == sorted(steps) and max(steps) >= 9  # the steps after 6, after the first run's rows


def test_a_moved_run_resumes_with_its_best_checkpoint(finished, tmp_path):
    overrides, out = finished
    moved = tmp_path / "elsewhere" / "run"
    best = json.loads((out / "results.json").read_text())["best_val_acc"]
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    again = [o for o in overrides if not o.startswith("output_dir=")] + [f"output_dir={moved}"]
    run(compose_train([*again, "trainer.max_steps=7", "resume=auto"]))  # no validation after the move
    results = json.loads((moved / "results.json").read_text())
    assert results["step"] == 7 and results["best_val_acc"] == best
    assert not out.exists()


def test_a_second_live_process_on_a_run_directory_is_refused(listops_data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with claimed(out), pytest.raises(LRAError) as caught:
        run(compose_train(tiny_run_overrides(listops_data, out)))
    assert str(caught.value) == (
        f"{out} is in use by another live process (it holds {out / '.lock'}); wait for it to end, "
        "or choose a new hydra.run.dir"
    )
    assert not (out / "checkpoints").exists()
    run(compose_train(tiny_run_overrides(listops_data, out)))  # released: the directory is free again


def test_a_refused_start_keeps_the_first_starts_hydra_record(listops_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = [*tiny_run_overrides(listops_data, out), f"hydra.run.dir={out}"]
    args = [a for a in args if not a.startswith("output_dir=")]
    assert train_py(args, monkeypatch) == 0
    record = {name: (out / ".hydra" / name).read_text() for name in ("config.yaml", "overrides.yaml")}
    assert "model.dropout=0.3" not in record["overrides.yaml"]
    assert train_py([*args, "model.dropout=0.3", "resume=auto"], monkeypatch) != 0
    assert {name: (out / ".hydra" / name).read_text() for name in record} == record
    assert OmegaConf.load(out / ".hydra" / "config.yaml").model.dropout != 0.3


NAMES = ["plain-dir", "with space", "$(touch PWNED)", "it's \"q\"", "x${oc.env:HOME}", "a,b=c", "back\\"]


@pytest.mark.parametrize("name", NAMES)
def test_the_resume_line_is_one_shell_word_hydra_reads_back_verbatim(tmp_path, name):
    run_dir = tmp_path / name
    word = resume_override(run_dir)
    argv = subprocess.run(["bash", "-c", f"printf '%s\\n' {word}"], cwd=tmp_path, capture_output=True, text=True)
    assert argv.stdout.splitlines() == [argv.stdout.splitlines()[0]]
    value = OverridesParser.create().parse_override(argv.stdout.splitlines()[0]).value()
    assert OmegaConf.create({"dir": value}).dir == str(run_dir)
    assert not (tmp_path / "PWNED").exists()
