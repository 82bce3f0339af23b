"""Runs grouped into configurations (the seeds of one config hash), with the summary's pick per (task, model)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lra.leaderboard.load import Run
from lra.published import AVERAGE_TASKS, RECIPES, TASKS, PublishedAccuracy, published_row, recipe_family


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation; std is None for fewer than two values, both None for none."""
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


@dataclass
class Entry:
    """The runs (seeds) of one configuration of one model on one task, under one recipe."""

    task: str
    model: str
    config_hash: str
    recipe: str = "custom"
    runs: list[Run] = field(default_factory=list)
    selected: bool = False  # the configuration shown in the summary for this (recipe family, task, model)
    n_configs: int = 1  # configurations of this (recipe family, task, model)

    @property
    def family(self) -> str:
        return recipe_family(self.recipe)

    def percent(self, key: str) -> tuple[float | None, float | None]:
        return mean_std([100.0 * getattr(run, key) for run in self.runs if getattr(run, key) is not None])

    def average(self, key: str) -> float | None:
        return mean_std([getattr(run, key) for run in self.runs if getattr(run, key) is not None])[0]

    @property
    def seeds(self) -> list[int]:
        return sorted(run.seed for run in self.runs)

    @property
    def stuck(self) -> int:
        """Runs that ended stuck at chance: counted in the means, since that is what the configuration gave."""
        return sum(run.stuck_at_chance for run in self.runs)

    @property
    def restarts(self) -> int:
        """Stuck attempts replaced by a new seed (on_chance=restart), over all runs: not in the means."""
        return sum(run.restarts for run in self.runs)

    @property
    def hardware(self) -> str | None:
        """The machine its runs' steps/s were measured on; `mixed (k)` where k machines differ (the mean speed then
        averages across them), None where no run recorded it."""
        machines = {run.hardware for run in self.runs if run.hardware is not None}
        if len(machines) > 1:
            return f"mixed ({len(machines)})"
        return machines.pop() if machines else None

    @property
    def checkpoint(self) -> str:
        """The checkpoint the headline reads: its runs' (one recipe, so one), or "mixed"."""
        kinds = {run.headline_checkpoint for run in self.runs}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    def published(self) -> PublishedAccuracy | None:
        """The published row of the same protocol: never another protocol's."""
        return published_row(self.model, self.recipe)

    def difference(self) -> float | None:
        row, ours = self.published(), self.percent("headline")[0]
        value = row.accuracy.get(self.task) if row else None
        return None if value is None or ours is None else ours - value


def aggregate(runs: Iterable[Run], same: Mapping[str, str] | None = None) -> list[Entry]:
    """Group by (task, model, config_hash, recipe); mark per (recipe family, task, model) the configuration with the
    best mean val acc. `same` maps a config hash to the one it counts as (seeds of one configuration run by two
    versions of the code, whose configs differ only by keys added at their old behaviour: the user's call)."""
    same = same or {}
    entries: dict[tuple[str, str, str, str], Entry] = {}
    for run in runs:
        key = (run.task, run.model, same.get(run.config_hash, run.config_hash), run.recipe)
        entries.setdefault(key, Entry(*key)).runs.append(run)
    by_cell: dict[tuple[str, str, str], list[Entry]] = {}
    for entry in entries.values():
        by_cell.setdefault((entry.family, entry.task, entry.model), []).append(entry)
    for group in by_cell.values():
        best = max(group, key=lambda e: (e.percent("best_val_acc")[0], len(e.runs), e.config_hash))
        best.selected = True
        for entry in group:
            entry.n_configs = len(group)
    return sorted(
        entries.values(),
        key=lambda e: (recipe_order(e.family), task_order(e.task), e.model, not e.selected, e.config_hash),
    )


def recipe_order(family: str) -> tuple[int, str]:
    """The known protocols in RECIPES order, then any other (custom last)."""
    names = list(RECIPES)
    return (names.index(family), "") if family in names else (len(names) + (family == "custom"), family)


def families(entries: Iterable[Entry]) -> list[str]:
    return sorted({e.family for e in entries}, key=recipe_order)


def task_order(task: str) -> tuple[int, str]:
    return (TASKS.index(task), "") if task in TASKS else (len(TASKS), task)


def summary_cells(entries: list[Entry], family: str) -> dict[str, dict[str, Entry]]:
    """model -> task -> the selected entry, for one recipe family."""
    cells: dict[str, dict[str, Entry]] = {}
    for entry in entries:
        if entry.selected and entry.family == family:
            cells.setdefault(entry.model, {})[entry.task] = entry
    return cells


def average5(by_task: dict[str, Entry]) -> float | None:
    if not all(task in by_task for task in AVERAGE_TASKS):
        return None
    return statistics.mean(by_task[task].percent("headline")[0] for task in AVERAGE_TASKS)
