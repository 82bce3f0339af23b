"""Our runs beside the published LRA numbers.

    python -m lra.leaderboard [RUN_DIRS...] [--wandb ENTITY/PROJECT] [--recipe NAME] [--out DIR] [--strict]

Reads every results.json under RUN_DIRS (default: outputs/ and multirun/) and, when logged in, the summaries of the
W&B runs of ENTITY/PROJECT; writes leaderboard.md (also printed), leaderboard.csv and leaderboard.png.

Decisions, stated again in the report itself:
- Headline: test accuracy at the checkpoint the run's recipe declares its authors tested (results.json `headline`,
  from the recipe's `headline` key: `last` for lra/*, `best` for the rest), in %, mean ± sample standard deviation
  (n - 1) over the runs of one configuration; both `test_acc` (best validation) and `test_acc_last` are in the CSV
  and the detail table.
- One summary per recipe (results.json `recipe`: the experiment a run trained under, e.g. nystrom/listops -> nystrom),
  each beside the published rows of that protocol only; `--recipe nystrom` keeps that protocol's runs and rows.
- Runs are grouped by (task, model, config_hash): the seeds of one configuration. Each configuration is its own row
  of the detail table; where a (task, model) has several, the summary shows the one with the highest mean
  best-validation accuracy (chosen on validation, never on test) and marks it with † and the number of configs.
- A malformed results.json is skipped with one line naming the file (on stderr and in the report); `--strict`
  makes it an error instead. The same run read twice (its results.json and its W&B summary) counts once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lra.atomic import write_text
from lra.errors import LRAError
from lra.leaderboard.aggregate import Entry, aggregate
from lra.leaderboard.load import Run, deduplicate, find_results, load_files, load_wandb
from lra.leaderboard.plot import plot
from lra.leaderboard.render import render_csv, render_markdown
from lra.published import recipe_family

DEFAULT_DIRS = ("outputs", "multirun")


def build(
    targets: Sequence[Path], projects: Sequence[str], out: Path, strict: bool = False,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr), recipe: str | None = None,
    same: Mapping[str, str] | None = None,
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
    if recipe is not None:
        runs = of_recipe(runs, recipe)
    entries = aggregate(runs, same)
    if same:
        notes = [*notes, *(f"config {old} counted as config {new} (--same)" for old, new in same.items())]
    sources = [*map(str, targets), *(f"W&B {p}" for p in projects)]
    markdown = render_markdown(entries, notes, sources, recipe_family(recipe) if recipe else None)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "leaderboard.md", markdown)
    write_text(out / "leaderboard.csv", render_csv(entries))
    plot(entries, out / "leaderboard.png")
    return entries, markdown


def of_recipe(runs: list[Run], recipe: str) -> list[Run]:
    """The runs of one protocol (`nystrom`) or one recipe (`nystrom/listops`)."""
    kept = [run for run in runs if (run.recipe == recipe if "/" in recipe else recipe_family(run.recipe) == recipe)]
    if not kept:
        found = sorted({recipe_family(run.recipe) for run in runs})
        raise LRAError(f"--recipe {recipe}: no run has that recipe; the runs' recipes: {', '.join(found)}")
    return kept


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lra.leaderboard", description=__doc__.splitlines()[0].rstrip("."))
    parser.add_argument("run_dirs", nargs="*", type=Path, help="run directories or results.json files (recursive); "
                        f"default: {' and '.join(d + '/' for d in DEFAULT_DIRS)} where they exist")
    parser.add_argument("--wandb", action="append", default=[], metavar="ENTITY/PROJECT",
                        help="also read this W&B project's run summaries (skipped with a note when offline)")
    parser.add_argument("--out", type=Path, default=Path("leaderboard"), help="where the .md, .csv and .png go")
    parser.add_argument("--recipe", metavar="NAME",
                        help="only this protocol's runs and published rows (nystrom, lra, ...; or nystrom/listops)")
    parser.add_argument("--strict", action="store_true", help="a malformed results.json is an error, not skipped")
    parser.add_argument("--same", action="append", default=[], metavar="HASH=AS_HASH",
                        help="count config HASH as AS_HASH: seeds of one configuration run by two versions of the "
                        "code, whose config.yaml differ only by keys added at their old behaviour (diff them first)")
    args = parser.parse_args(argv)
    same = {}
    for pair in args.same:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            parser.error(f"--same {pair!r}: give HASH=AS_HASH, two config hashes from results.json")
        same[old] = new
    targets = args.run_dirs or [Path(d) for d in DEFAULT_DIRS if Path(d).is_dir()]
    try:
        if not targets and not args.wandb:
            raise LRAError("no outputs/ or multirun/ here and no --wandb; pass the run directories to read")
        _, markdown = build(targets, args.wandb, args.out, args.strict, recipe=args.recipe, same=same)
    except LRAError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(markdown)
    print(f"wrote {args.out / 'leaderboard.md'}, {args.out / 'leaderboard.csv'}, {args.out / 'leaderboard.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
