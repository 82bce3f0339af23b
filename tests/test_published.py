"""lra/published.py (what the leaderboard compares with) and docs/reference.md (what a reader checks) hold the same
published tables: every row of one is a row of the other, number for number."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from lra.published import ACCURACY, EFFICIENCY, FAIL, TASKS

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference.md"
NUMBER = re.compile(r"-?\d+(\.\d+)?")


def section(title: str) -> list[str]:
    """The lines of `## title`, up to the next `## ` heading."""
    lines = REFERENCE.read_text().splitlines()
    start = lines.index(f"## {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def table_rows(lines: list[str], words: tuple[str, ...], header: str) -> list[tuple[str, tuple[str, ...]]]:
    """(first cell, the cells that are numbers or one of `words`) of every row of the tables whose header row has a
    `header` column."""
    rows, keep, previous = [], False, ""
    for line in lines:
        if line.startswith("|") and not set(line) <= set("|- "):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not previous.startswith("|"):  # a table's header row
                keep = header in cells
            elif keep:
                rows.append((cells[0], tuple(c for c in cells[1:] if NUMBER.fullmatch(c) or c in words)))
        previous = line
    return rows


def number(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:g}"


def canonical(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v if not NUMBER.fullmatch(v) else f"{float(v):g}" for v in values)


def test_published_accuracy_tables_agree():
    documented = Counter(canonical(v) for _, v in table_rows(section("Published accuracy"), (FAIL,), "ListOps"))
    ours = Counter()
    for row in ACCURACY:
        values = [number(row.accuracy[task], FAIL) for task in TASKS if task in row.accuracy]
        if row.average is not None:
            values.append(number(row.average, FAIL))
        ours[tuple(values)] += 1
    assert ours - documented == Counter(), "rows of lra/published.py missing from docs/reference.md"
    assert documented - ours == Counter(), "rows of docs/reference.md missing from lra/published.py"


def test_published_speed_and_memory_tables_agree():
    rows = table_rows(section("Published speed and memory"), ("OOM",), "model")
    documented = Counter((label, canonical(v)) for label, v in rows)
    ours = Counter((e.label, tuple(number(v, "OOM") for v in e.values.values())) for e in EFFICIENCY)
    assert ours == documented
