"""The leaderboard's figure: accuracy against training speed per task, marker area ~ peak memory."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lra.atomic import atomic_file
from lra.leaderboard.aggregate import Entry, average5, families, summary_cells, task_order
from lra.published import TASK_LABELS

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@dataclass
class Point:
    model: str
    speed: float | None  # steps/s
    accuracy: float  # %
    memory: float | None  # peak MB


def plain(text: str) -> str:
    """A record's name drawn as itself: `$` would start matplotlib's math mode (an unbalanced one fails the plot)."""
    return text.replace("$", r"\$")


def panels(entries: list[Entry]) -> list[tuple[str, list[Point]]]:
    """One panel per task, then the 5-task average against Text steps/s (the LRA paper's figure used Text speed).
    With several recipes, each model's point is labelled `model [recipe]`."""
    several = len(families(entries)) > 1
    cells = {
        (f"{model} [{family}]" if several else model): by
        for family in families(entries) for model, by in summary_cells(entries, family).items()
    }
    out = []
    for task in sorted({e.task for e in entries}, key=task_order):
        points = [
            Point(m, e.average("steps_per_s"), e.percent("headline")[0], e.average("peak_memory_mb"))
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


# Where the speed axis is labelled, coarsest first: mantissa x 10^k.
MANTISSAS = ((1.0,), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0))


def log_ticks(low: float, high: float, mantissas: tuple[float, ...]) -> list[float]:
    """Mantissa x 10^k for every decade that [low, high] touches, ascending."""
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    return [m * 10.0**k for k in decades for m in mantissas]


def speed_axis(ax: Axes) -> None:
    """Log-scale steps/s axis: plain-number labels (0.5, 1, 2, 10) at decades, 1-2-5 or 1-9 values, the coarsest
    that puts three inside the limits; minor ticks unlabelled. Labelled minors overlap, and a range within a decade
    may hold no decade tick. Call after plotting, since the labels follow the data's limits; limits holding under
    two labels are widened to the nearest ones outside them."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ax.set_xscale("log")
    low, high = ax.get_xlim()
    for mantissas in MANTISSAS:
        values = log_ticks(low, high, mantissas)
        inside = [v for v in values if low <= v <= high]
        if len(inside) >= 3:
            break
    if len(inside) < 2:
        low, high = max(v for v in values if v <= low), min(v for v in values if v >= high)
        ax.set_xlim(low, high)
        inside = [v for v in values if low <= v <= high]
    ax.xaxis.set_major_locator(FixedLocator(inside))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot(entries: list[Entry], path: Path) -> None:
    """Accuracy against training steps/s, marker area ~ peak memory (hollow: memory not recorded)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
            ax.annotate(plain(p.model), (p.speed, p.accuracy), textcoords="offset points", xytext=(6, 4), fontsize=8)
        if shown:
            ax.margins(x=0.2, y=0.15)
            speed_axis(ax)
        missing = sorted(p.model for p in points if not p.speed)
        if missing:
            note = "no steps/s: " + plain(", ".join(missing))
            ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, va="bottom")
        ax.set_title(plain(title))
        ax.set_xlabel("training steps/s")
        ax.set_ylabel("test accuracy %")
        ax.grid(alpha=0.3)
    fig.suptitle("Accuracy vs training speed\nmarker area = peak memory (as in the LRA paper's figure)", fontsize=10)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
