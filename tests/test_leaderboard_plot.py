"""The leaderboard figure's speed axis: plain-number labels on major ticks only, readable over any range."""

import re

import pytest
from matplotlib.figure import Figure

from lra.leaderboard.plot import speed_axis

PLAIN = re.compile(r"\d+(\.\d+)?")


def labels(speeds: list[float]) -> tuple[list[str], list[str], tuple[float, float]]:
    """Major and minor tick labels and the limits of a speed axis drawn over `speeds`, as plot() draws it."""
    ax = Figure().subplots()
    ax.scatter(speeds, [50.0] * len(speeds))
    ax.margins(x=0.2)
    speed_axis(ax)
    ax.figure.draw_without_rendering()
    majors = [t.get_text() for t in ax.xaxis.get_majorticklabels()]
    return majors, [t.get_text() for t in ax.xaxis.get_minorticklabels()], ax.get_xlim()


@pytest.mark.parametrize("speeds", [[0.6, 7.0], [0.2, 300.0], [3.0, 3.4], [5.0], [1200.0, 1500.0]])
def test_major_ticks_only_are_labelled_with_plain_numbers(speeds):
    majors, minors, (low, high) = labels(speeds)
    assert len(majors) >= 2 and all(PLAIN.fullmatch(text) for text in majors), majors
    assert all(low <= float(text) <= high for text in majors)
    assert all(text == "" for text in minors), minors
    assert low <= min(speeds) and max(speeds) <= high


def test_labels_within_a_decade_are_1_2_5_and_decades_across_many():
    majors, minors, _ = labels([0.6, 7.0])
    assert {"1", "2", "5"} <= set(majors) and len(minors) > len(majors)  # the minor ticks are there, unlabelled
    majors, _, _ = labels([0.2, 300.0])
    assert {"0.1", "1", "10", "100"} <= set(majors) and "2" not in majors
