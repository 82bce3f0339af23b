"""Our runs beside the published LRA numbers.

    python -m lra.leaderboard [RUN_DIRS...] [--wandb ENTITY/PROJECT] [--out DIR] [--strict]

Reads every results.json under RUN_DIRS (default: outputs/ and multirun/) and, when logged in, the summaries of the
W&B runs of ENTITY/PROJECT; writes leaderboard.md (also printed), leaderboard.csv and leaderboard.png.

Decisions, stated again in the report itself:
- Headline: test accuracy at the best-validation checkpoint (results.json `test_acc`), in %, mean ± sample standard
  deviation (n - 1) over the runs of one configuration; the LRA paper read test accuracy at the last checkpoint
  (`test_acc_last`, in the CSV and the detail table).
- Runs are grouped by (task, model, config_hash): the seeds of one configuration. Each configuration is its own row
  of the detail table; where a (task, model) has several, the summary shows the one with the highest mean
  best-validation accuracy (chosen on validation, never on test) and marks it with † and the number of configs.
- A malformed results.json is skipped with one line naming the file (on stderr and in the report); `--strict`
  makes it an error instead. The same run read twice (its results.json and its W&B summary) counts once.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lra.errors import LRAError
from lra.loggers import wandb_logged_in
from lra.published import ACCURACY, AVERAGE_TASKS, EFFICIENCY, TASK_LABELS, TASKS, PublishedAccuracy, primary

REQUIRED = ("task", "model", "seed", "config_hash", "best_val_acc", "test_acc")
OPTIONAL = ("test_acc_last", "steps_per_s", "peak_memory_mb", "n_params")
DEFAULT_DIRS = ("outputs", "multirun")
HEADLINE = (
    "Accuracy (%) = test accuracy at the best-validation checkpoint (results.json `test_acc`), mean ± sample std "
    "over runs, (n) = runs. The LRA paper read test accuracy at the last checkpoint (`test_acc_last` here). "
    "Δ = ours − published, in points. Avg (5) = mean over ListOps, Text, Retrieval, Image and Pathfinder, given "
    "all five; Path-X is separate. † = best of several configurations of that (task, model) by mean validation "
    "accuracy (all are in the detail table)."
)


@dataclass(frozen=True)
class Run:
    """One training run, as its results.json (or W&B summary) records it."""

    task: str
    model: str
    seed: int
    config_hash: str
    best_val_acc: float
    test_acc: float
    test_acc_last: float | None
    steps_per_s: float | None
    peak_memory_mb: float | None
    n_params: int | None
    source: str

    def identity(self) -> tuple:
        """Equal for two copies of one run (a results.json and the W&B summary it was uploaded to)."""
        return self.task, self.model, self.config_hash, self.seed, self.best_val_acc, self.test_acc


def _number(value, key: str, low: float | None = None, high: float | None = None, optional: bool = False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} is {value!r}, not a number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{key}={value} is outside [{low}, {high}]")
    return value


def parse_run(data, source: str) -> Run:
    """Validate one record; ValueError names the first problem."""
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object but {type(data).__name__}")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    for key in ("task", "model", "config_hash"):
        if not isinstance(data[key], str) or not data[key]:
            raise ValueError(f"{key} is {data[key]!r}, not a name")
    if isinstance(data["seed"], bool) or not isinstance(data["seed"], int):
        raise ValueError(f"seed is {data['seed']!r}, not an integer")
    return Run(
        task=data["task"],
        model=data["model"],
        seed=data["seed"],
        config_hash=data["config_hash"],
        best_val_acc=float(_number(data["best_val_acc"], "best_val_acc", 0.0, 1.0)),
        test_acc=float(_number(data["test_acc"], "test_acc", 0.0, 1.0)),
        test_acc_last=_number(data.get("test_acc_last"), "test_acc_last", 0.0, 1.0, optional=True),
        steps_per_s=_number(data.get("steps_per_s"), "steps_per_s", 0.0, optional=True),
        peak_memory_mb=_number(data.get("peak_memory_mb"), "peak_memory_mb", 0.0, optional=True),
        n_params=_number(data.get("n_params"), "n_params", 0, optional=True),
        source=source,
    )


def find_results(targets: Sequence[Path]) -> list[Path]:
    """results.json files: the targets that are files, and every one below the targets that are directories."""
    found = []
    for target in targets:
        if target.is_file():
            found.append(target)
        elif target.is_dir():
            found.extend(sorted(target.rglob("results.json")))
        else:
            raise LRAError(f"{target}: no such file or directory; pass run directories (or results.json files)")
    return found


def load_files(paths: Iterable[Path]) -> tuple[list[Run], list[str]]:
    runs, problems = [], []
    for path in paths:
        try:
            runs.append(parse_run(json.loads(path.read_text()), str(path)))
        except json.JSONDecodeError as err:
            problems.append(f"skipped {path}: invalid JSON (line {err.lineno}, column {err.colno}: {err.msg})")
        except (OSError, UnicodeDecodeError) as err:
            problems.append(f"skipped {path}: unreadable ({err})")
        except ValueError as err:
            problems.append(f"skipped {path}: {err}")
    return runs, problems


def load_wandb(project: str) -> tuple[list[Run], list[str]]:
    """Finished runs of a W&B project whose summary holds a results record; offline or failing: a note, no runs."""
    if not wandb_logged_in():
        return [], [f"W&B {project}: not logged in (run `wandb login` or set WANDB_API_KEY); skipped"]
    runs, problems = [], []
    try:
        import wandb

        for remote in wandb.Api(timeout=60).runs(project):
            summary = {key: remote.summary.get(key) for key in (*REQUIRED, *OPTIONAL)}
            if any(summary[key] is None for key in REQUIRED):
                continue  # unfinished, crashed, or not a training run of this harness
            source = f"wandb:{project}/{remote.id}"
            try:
                runs.append(parse_run(summary, source))
            except ValueError as err:
                problems.append(f"skipped {source}: {err}")
    except Exception as err:  # any failure of the network or of the API is a note, never a crash
        first_line = (str(err).strip().splitlines() or [""])[0]
        return [], [f"W&B {project}: cannot read runs ({type(err).__name__}: {first_line}); skipped"]
    return runs, problems


def deduplicate(runs: Iterable[Run]) -> list[Run]:
    seen, unique = set(), []
    for run in runs:
        if run.identity() not in seen:
            seen.add(run.identity())
            unique.append(run)
    return unique


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation; std is None for fewer than two values, both None for none."""
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


@dataclass
class Entry:
    """The runs (seeds) of one configuration of one model on one task."""

    task: str
    model: str
    config_hash: str
    runs: list[Run] = field(default_factory=list)
    selected: bool = False  # the configuration shown in the summary for this (task, model)
    n_configs: int = 1  # configurations of this (task, model)

    def percent(self, key: str) -> tuple[float | None, float | None]:
        return mean_std([100.0 * getattr(run, key) for run in self.runs if getattr(run, key) is not None])

    def average(self, key: str) -> float | None:
        return mean_std([getattr(run, key) for run in self.runs if getattr(run, key) is not None])[0]

    @property
    def seeds(self) -> list[int]:
        return sorted(run.seed for run in self.runs)

    def published(self) -> PublishedAccuracy | None:
        return primary(self.model)

    def difference(self) -> float | None:
        row, ours = self.published(), self.percent("test_acc")[0]
        value = row.accuracy.get(self.task) if row else None
        return None if value is None or ours is None else ours - value


def aggregate(runs: Iterable[Run]) -> list[Entry]:
    """Group by (task, model, config_hash); mark per (task, model) the configuration with the best mean val acc."""
    entries: dict[tuple[str, str, str], Entry] = {}
    for run in runs:
        key = (run.task, run.model, run.config_hash)
        entries.setdefault(key, Entry(*key)).runs.append(run)
    by_cell: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries.values():
        by_cell.setdefault((entry.task, entry.model), []).append(entry)
    for group in by_cell.values():
        best = max(group, key=lambda e: (e.percent("best_val_acc")[0], len(e.runs), e.config_hash))
        best.selected = True
        for entry in group:
            entry.n_configs = len(group)
    return sorted(entries.values(), key=lambda e: (task_order(e.task), e.model, not e.selected, e.config_hash))


def task_order(task: str) -> tuple[int, str]:
    return (TASKS.index(task), "") if task in TASKS else (len(TASKS), task)


def summary_cells(entries: list[Entry]) -> dict[str, dict[str, Entry]]:
    """model -> task -> the selected entry."""
    cells: dict[str, dict[str, Entry]] = {}
    for entry in entries:
        if entry.selected:
            cells.setdefault(entry.model, {})[entry.task] = entry
    return cells


def average5(by_task: dict[str, Entry]) -> float | None:
    if not all(task in by_task for task in AVERAGE_TASKS):
        return None
    return statistics.mean(by_task[task].percent("test_acc")[0] for task in AVERAGE_TASKS)


# --- rendering -------------------------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 2, sign: bool = False, dash: str = "–") -> str:
    if value is None:
        return dash
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def accuracy_text(entry: Entry) -> str:
    mean, std = entry.percent("test_acc")
    spread = f" ± {std:.2f}" if std is not None else ""
    mark = " †" if entry.n_configs > 1 else ""
    return f"{mean:.2f}{spread} ({len(entry.runs)}){mark}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def column_tasks(entries: list[Entry]) -> list[str]:
    """The LRA tasks, then any other task our runs have (a custom task config), in name order."""
    extra = sorted({e.task for e in entries} - set(TASKS))
    return [*AVERAGE_TASKS, *extra]


def summary_table(entries: list[Entry]) -> list[str]:
    tasks = column_tasks(entries)
    cells = summary_cells(entries)
    ranked = sorted(cells, key=lambda m: (average5(cells[m]) is None, -(average5(cells[m]) or 0.0), m))
    rows = []
    for model in ranked:
        by_task = cells[model]
        ours_avg = average5(by_task)
        rows.append(
            [f"**{model}**"]
            + [accuracy_text(by_task[t]) if t in by_task else "–" for t in tasks]
            + [fmt(ours_avg), accuracy_text(by_task["pathx"]) if "pathx" in by_task else "–"]
        )
        published = primary(model)
        if published is None:
            continue
        pub_avg = published.average5()

        def beside(task: str, ours: float | None, published=published) -> str:
            text = published.text(task) or "–"
            value = published.accuracy.get(task)
            return text if ours is None or value is None else f"{text} (Δ {ours - value:+.2f})"

        rows.append(
            [f"↳ published: {published.label}, {published.source}"]
            + [beside(t, by_task[t].percent("test_acc")[0] if t in by_task else None) for t in tasks]
            + [
                fmt(pub_avg) if ours_avg is None or pub_avg is None else f"{pub_avg:.2f} (Δ {ours_avg - pub_avg:+.2f})",
                beside("pathx", by_task["pathx"].percent("test_acc")[0] if "pathx" in by_task else None),
            ]
        )
    header = ["model", *(TASK_LABELS.get(t, t) for t in tasks), "Avg (5)", "Path-X"]
    return table(header, rows)


def detail_table(entries: list[Entry]) -> list[str]:
    rows = []
    for e in entries:
        published = e.published()
        pub_text = published.text(e.task) if published else ""
        rows.append([
            TASK_LABELS.get(e.task, e.task), e.model, e.config_hash + (" †" if e.selected and e.n_configs > 1 else ""),
            len(e.runs), ",".join(map(str, e.seeds)), accuracy_text(e).rsplit(" (", 1)[0],
            fmt(e.percent("best_val_acc")[0]), fmt(e.percent("test_acc_last")[0]), pub_text or "–",
            fmt(e.difference(), sign=True), fmt(e.average("steps_per_s")), fmt(e.average("peak_memory_mb"), 0),
            fmt(e.average("n_params"), 0),
        ])
    header = [
        "task", "model", "config", "n", "seeds", "test acc %", "best val %", "test acc (last ckpt) %",
        "published %", "Δ", "steps/s", "peak memory MB", "params",
    ]
    return table(header, rows)


METRIC_LABELS = {"steps_per_s": "steps/s", "peak_memory_gb": "peak memory GB"}


def published_tables() -> list[str]:
    accuracy = table(
        ["model", "our config", "source", *(TASK_LABELS[t] for t in TASKS), "avg (paper)"],
        [
            [row.label + (f" ({row.note})" if row.note else ""), row.model, row.source,
             *(row.text(t) for t in TASKS), f"{row.average:.2f}" + ("" if row.average_over == 5 else " (6 tasks)")]
            for row in ACCURACY
        ],
    )
    lengths = sorted({length for e in EFFICIENCY for length in e.values})
    efficiency = table(
        ["model", "source", "setting", "metric", *(f"{n // 1024}K" if n >= 1024 else str(n) for n in lengths)],
        [
            [e.label, e.source, e.setting, METRIC_LABELS[e.metric],
             *(("OOM" if e.values[n] is None else f"{e.values[n]:g}") if n in e.values else "" for n in lengths)]
            for e in EFFICIENCY
        ],
    )
    return ["## Published accuracy (%)", "", *accuracy, "", "## Published speed and memory", "", *efficiency]


def render_markdown(entries: list[Entry], notes: list[str], sources: list[str]) -> str:
    n_runs = sum(len(e.runs) for e in entries)
    lines = [
        "# LRA leaderboard", "", HEADLINE, "",
        f"{n_runs} runs in {len(entries)} configurations, from {', '.join(sources) or 'nowhere'}.", "",
        "## Summary", "", *summary_table(entries), "",
        "## Runs by configuration", "", *detail_table(entries), "",
        *published_tables(), "",
    ]
    if notes:
        lines += ["## Notes", "", *(f"- {note}" for note in notes), ""]
    return "\n".join(lines)


CSV_COLUMNS = (
    "task", "model", "config_hash", "selected", "n_configs", "n_runs", "seeds",
    "test_acc_pct_mean", "test_acc_pct_std", "best_val_acc_pct_mean", "best_val_acc_pct_std",
    "test_acc_last_pct_mean", "published_pct", "published_source", "diff_pct",
    "steps_per_s_mean", "peak_memory_mb_mean", "n_params",
)


def render_csv(entries: list[Entry]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        published = e.published()
        value = published.accuracy.get(e.task) if published else None

        def cell(x):
            return "" if x is None else repr(x) if isinstance(x, float) else x

        writer.writerow([cell(x) for x in (
            e.task, e.model, e.config_hash, int(e.selected), e.n_configs, len(e.runs), " ".join(map(str, e.seeds)),
            *e.percent("test_acc"), *e.percent("best_val_acc"), e.percent("test_acc_last")[0],
            value if value is not None else ("FAIL" if published and e.task in published.accuracy else None),
            published.source if published else None, e.difference(),
            e.average("steps_per_s"), e.average("peak_memory_mb"), e.average("n_params"),
        )])
    return buffer.getvalue()


# --- the figure ------------------------------------------------------------------------------------------------
@dataclass
class Point:
    model: str
    speed: float | None  # steps/s
    accuracy: float  # %
    memory: float | None  # peak MB


def panels(entries: list[Entry]) -> list[tuple[str, list[Point]]]:
    """One panel per task, then the 5-task average against Text steps/s (the LRA paper's figure used Text speed)."""
    cells = summary_cells(entries)
    out = []
    for task in sorted({e.task for e in entries}, key=task_order):
        points = [
            Point(m, e.average("steps_per_s"), e.percent("test_acc")[0], e.average("peak_memory_mb"))
            for m, by in sorted(cells.items()) if (e := by.get(task)) is not None
        ]
        out.append((TASK_LABELS.get(task, task), points))
    averaged = [
        Point(m, by["text"].average("steps_per_s"), average5(by), by["text"].average("peak_memory_mb"))
        for m, by in sorted(cells.items()) if average5(by) is not None
    ]
    if averaged:
        out.append(("Avg (5) vs Text speed", averaged))
    return out


def plot(entries: list[Entry], path: Path) -> None:
    """Accuracy against training steps/s, marker area ~ peak memory (hollow: memory not recorded)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    groups = panels(entries)
    ncols = min(3, max(len(groups), 1))
    nrows = max(math.ceil(len(groups) / ncols), 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 4.0 * nrows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.axis("off")
    if not groups:
        axes[0, 0].text(0.5, 0.5, "no runs", ha="center", va="center")
    largest = max((p.memory for _, points in groups for p in points if p.memory), default=1.0)
    names = sorted({p.model for _, points in groups for p in points})
    colour = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}  # one colour per model
    for ax, (title, points) in zip(axes.flat, groups, strict=False):
        shown = [p for p in points if p.speed]
        for p in shown:
            size = 40 + 400 * (p.memory or 0.0) / largest
            face = "none" if p.memory is None else [colour[p.model]]
            ax.scatter(p.speed, p.accuracy, s=size, alpha=0.6, facecolors=face, edgecolors="k", linewidths=0.8)
            ax.annotate(p.model, (p.speed, p.accuracy), textcoords="offset points", xytext=(6, 4), fontsize=8)
        if shown:
            ax.margins(x=0.2, y=0.15)
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(ScalarFormatter())
        missing = sorted(p.model for p in points if not p.speed)
        if missing:
            ax.text(0.01, 0.01, "no steps/s: " + ", ".join(missing), transform=ax.transAxes, fontsize=7, va="bottom")
        ax.set_title(title)
        ax.set_xlabel("training steps/s")
        ax.set_ylabel("test accuracy %")
        ax.grid(alpha=0.3)
    fig.suptitle("Accuracy vs training speed\nmarker area = peak memory (as in the LRA paper's figure)", fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- command line ----------------------------------------------------------------------------------------------
def build(
    targets: Sequence[Path], projects: Sequence[str], out: Path, strict: bool = False,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> tuple[list[Entry], str]:
    """Gather, aggregate and write the three files; returns the entries and the markdown."""
    files = find_results(targets)
    runs, notes = load_files(files)
    if notes and strict:
        raise LRAError(notes[0].replace("skipped ", "malformed ", 1) + " (drop --strict to skip it)")
    for project in projects:
        remote, remote_notes = load_wandb(project)
        runs += remote
        notes += remote_notes
    for note in notes:
        say(note)
    runs = deduplicate(runs)
    if not runs:
        where = ", ".join(map(str, [*targets, *projects])) or "nothing"
        raise LRAError(f"no results found in {where}; train first (python train.py ...) or pass run directories")
    entries = aggregate(runs)
    markdown = render_markdown(entries, notes, [*map(str, targets), *(f"W&B {p}" for p in projects)])
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "leaderboard.md", markdown)
    write_text(out / "leaderboard.csv", render_csv(entries))
    plot(entries, out / "leaderboard.png")
    return entries, markdown


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lra.leaderboard", description=__doc__.splitlines()[0].rstrip("."))
    parser.add_argument("run_dirs", nargs="*", type=Path, help="run directories or results.json files (recursive); "
                        f"default: {' and '.join(d + '/' for d in DEFAULT_DIRS)} where they exist")
    parser.add_argument("--wandb", action="append", default=[], metavar="ENTITY/PROJECT",
                        help="also read this W&B project's run summaries (skipped with a note when offline)")
    parser.add_argument("--out", type=Path, default=Path("leaderboard"), help="where the .md, .csv and .png go")
    parser.add_argument("--strict", action="store_true", help="a malformed results.json is an error, not skipped")
    args = parser.parse_args(argv)
    targets = args.run_dirs or [Path(d) for d in DEFAULT_DIRS if Path(d).is_dir()]
    try:
        if not targets and not args.wandb:
            raise LRAError("no outputs/ or multirun/ here and no --wandb; pass the run directories to read")
        _, markdown = build(targets, args.wandb, args.out, args.strict)
    except LRAError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(markdown)
    print(f"wrote {args.out / 'leaderboard.md'}, {args.out / 'leaderboard.csv'}, {args.out / 'leaderboard.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
