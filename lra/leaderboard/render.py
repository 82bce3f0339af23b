"""The leaderboard as text: the markdown report (summary, detail and published tables) and the CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from lra.leaderboard.aggregate import Entry, average5, families, summary_cells
from lra.published import ACCURACY, AVERAGE_TASKS, EFFICIENCY, RECIPES, TASK_LABELS, TASKS, published_row

HEADLINE = (
    "Accuracy (%) = test accuracy at the checkpoint each recipe's authors tested (results.json `headline`; each "
    "summary's title says which): the last one for the LRA release (`test_acc_last`), the best-validation one for "
    "the Nystromformer, Skyformer, xformers, Fourier Transformer and S4 codes (`test_acc`); both are in the detail "
    "table and the CSV. Mean ± sample std over runs, (n) = runs; ‡ = validation was the test set (Text as LRA ran "
    "it), so the headline is the last checkpoint's test accuracy whatever the recipe says. "
    "Δ = ours − published, in points. Avg (5) = mean over ListOps, Text, Retrieval, Image and Pathfinder, given "
    "all five; Path-X is separate. † = best of several configurations of that (task, model) by mean validation "
    "accuracy (all are in the detail table). §k = k of the runs ended stuck at chance (`stuck_at_chance`); "
    "restarts = stuck attempts a run replaced by the next seed (`on_chance=restart`). One summary per recipe (the "
    "protocol a run trained under, results.json `recipe`): our rows sit beside the published rows of the same "
    "protocol only; `custom` runs (no experiment=) have none."
)


# Characters that would let a record's text change a table's structure (a cell, a row, an HTML tag, a code span or
# link swallowing a separator): escaped to show as text. (`_` is left: GFM never emphasises inside a word.)
MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*[]|"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;"})


def md(text) -> str:
    """A record's text (model, task, recipe, config, a path) as literal markdown on one line: no cell, row, link,
    emphasis or HTML tag can come from it."""
    return " ".join(str(text).split()).translate(MARKDOWN)


def fmt(value: float | None, digits: int = 2, sign: bool = False, dash: str = "–") -> str:
    if value is None:
        return dash
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def accuracy_text(entry: Entry) -> str:
    mean, std = entry.percent("headline")
    spread = f" ± {std:.2f}" if std is not None else ""
    mark = " †" if entry.n_configs > 1 else ""
    mark += " ‡" if any(run.val_is_test for run in entry.runs) else ""
    mark += f" §{entry.stuck}" if entry.stuck else ""
    return f"{mean:.2f}{spread} ({len(entry.runs)}){mark}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def column_tasks(entries: list[Entry]) -> list[str]:
    """The LRA tasks, then any other task our runs have (a custom task config), in name order."""
    extra = sorted({e.task for e in entries} - set(TASKS))
    return [*AVERAGE_TASKS, *extra]


def summary_table(entries: list[Entry], family: str) -> list[str]:
    tasks = column_tasks(entries)
    cells = summary_cells(entries, family)
    ranked = sorted(cells, key=lambda m: (average5(cells[m]) is None, -(average5(cells[m]) or 0.0), m))
    rows = []
    for model in ranked:
        by_task = cells[model]
        ours_avg = average5(by_task)
        rows.append(
            [f"**{md(model)}**"]
            + [accuracy_text(by_task[t]) if t in by_task else "–" for t in tasks]
            + [fmt(ours_avg), accuracy_text(by_task["pathx"]) if "pathx" in by_task else "–"]
        )
        published = published_row(model, family)
        if published is None:
            continue
        pub_avg = published.average5()

        def beside(task: str, ours: float | None, published=published) -> str:
            text = published.text(task) or "–"
            value = published.accuracy.get(task)
            return text if ours is None or value is None else f"{text} (Δ {ours - value:+.2f})"

        rows.append(
            [f"↳ published: {published.label}, {published.source}"]
            + [beside(t, by_task[t].percent("headline")[0] if t in by_task else None) for t in tasks]
            + [
                fmt(pub_avg) if ours_avg is None or pub_avg is None else f"{pub_avg:.2f} (Δ {ours_avg - pub_avg:+.2f})",
                beside("pathx", by_task["pathx"].percent("headline")[0] if "pathx" in by_task else None),
            ]
        )
    header = ["model", *(TASK_LABELS.get(t, md(t)) for t in tasks), "Avg (5)", "Path-X"]
    return table(header, rows)


def detail_table(entries: list[Entry]) -> list[str]:
    rows = []
    for e in entries:
        published = e.published()
        pub_text = published.text(e.task) if published else ""
        rows.append([
            md(e.recipe), TASK_LABELS.get(e.task, md(e.task)), md(e.model),
            md(e.config_hash) + (" †" if e.selected and e.n_configs > 1 else ""),
            len(e.runs), ",".join(map(str, e.seeds)), accuracy_text(e).rsplit(" (", 1)[0], e.checkpoint,
            fmt(e.percent("test_acc")[0]), fmt(e.percent("best_val_acc")[0]), fmt(e.percent("test_acc_last")[0]),
            pub_text or "–",
            fmt(e.difference(), sign=True), fmt(e.average("steps_per_s")), fmt(e.average("peak_memory_mb"), 0),
            fmt(e.average("n_params"), 0), e.stuck, e.restarts, md(e.hardware) if e.hardware else "–",
        ])
    header = [
        "recipe", "task", "model", "config", "n", "seeds", "headline %", "headline ckpt",
        "test acc (best-val ckpt) %", "best val %", "test acc (last ckpt) %", "published %", "Δ", "steps/s",
        "peak memory MB", "params", "stuck", "restarts", "hardware",
    ]
    return table(header, rows)


METRIC_LABELS = {"steps_per_s": "steps/s", "peak_memory_gb": "peak memory GB"}


def paper_average(row) -> str:
    if row.average is None:
        return "–"
    return f"{row.average:g}" + ("" if row.average_over == 5 else " (6 tasks)")


def published_tables(only: str | None = None) -> list[str]:
    """Every published row, or only those of recipe family `only`."""
    accuracy = table(
        ["recipe", "model", "our config", "source", *(TASK_LABELS[t] for t in TASKS), "avg (paper)"],
        [
            [row.recipe, row.label + (f" ({row.note})" if row.note else ""), row.model, row.source,
             *(row.text(t) or "–" for t in TASKS), paper_average(row)]
            for row in ACCURACY if only is None or row.recipe == only
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


CHECKPOINT_WORDS = {"best": "the best-validation checkpoint", "last": "the last checkpoint"}


def checkpoint_caption(entries: list[Entry], family: str) -> str:
    """Which checkpoint this summary's headline reads, from its runs' recipes (Text's ‡ rows aside)."""
    declared = {run.checkpoint for e in entries if e.family == family for run in e.runs}
    if len(declared) == 1:
        (checkpoint,) = declared
        return f"Headline: test accuracy at {CHECKPOINT_WORDS[checkpoint]}, as this protocol's authors read it."
    return "Headline: test accuracy at the checkpoint each run's recipe declares (" + ", ".join(
        f"{e.recipe}: {e.runs[0].checkpoint}" for e in entries if e.family == family and e.selected) + ")."


def render_markdown(entries: list[Entry], notes: list[str], sources: list[str], only: str | None = None) -> str:
    """The report; `only`: the one recipe family it was restricted to (python -m lra.leaderboard --recipe)."""
    n_runs = sum(len(e.runs) for e in entries)
    lines = [
        "# LRA leaderboard" + (f": recipe {only}" if only else ""), "", HEADLINE, "",
        f"{n_runs} runs in {len(entries)} configurations, from {md(', '.join(sources)) or 'nowhere'}.", "",
    ]
    for family in families(entries):
        about = RECIPES.get(family, "no published table" if family != "custom" else "no experiment: no published row")
        lines += [f"## Summary: {md(family)} ({about})", "", checkpoint_caption(entries, family), "",
                  *summary_table(entries, family), ""]
    lines += ["## Runs by configuration", "", *detail_table(entries), "", *published_tables(only), ""]
    if notes:
        lines += ["## Notes", "", *(f"- {md(note)}" for note in notes), ""]
    return "\n".join(lines)


CSV_COLUMNS = (
    "recipe", "task", "model", "config_hash", "selected", "n_configs", "n_runs", "seeds",
    "headline_checkpoint", "headline_pct_mean", "headline_pct_std",
    "test_acc_pct_mean", "test_acc_pct_std", "best_val_acc_pct_mean", "best_val_acc_pct_std",
    "test_acc_last_pct_mean", "published_pct", "published_source", "diff_pct",
    "steps_per_s_mean", "peak_memory_mb_mean", "n_params", "n_stuck", "n_restarts", "hardware",
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
            e.recipe, e.task, e.model, e.config_hash, int(e.selected), e.n_configs, len(e.runs),
            " ".join(map(str, e.seeds)), e.checkpoint,
            *e.percent("headline"), *e.percent("test_acc"), *e.percent("best_val_acc"), e.percent("test_acc_last")[0],
            value if value is not None else ("FAIL" if published and e.task in published.accuracy else None),
            published.source if published else None, e.difference(),
            e.average("steps_per_s"), e.average("peak_memory_mb"), e.average("n_params"), e.stuck, e.restarts,
            e.hardware,
        )])
    return buffer.getvalue()
