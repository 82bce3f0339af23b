"""lra.parallel: ordered results, bounded look-ahead, errors as raised, and a shutdown that never hangs."""

from __future__ import annotations

import itertools

import pytest

from lra.parallel import parallel_map


def test_results_come_in_task_order():
    assert list(parallel_map(pow, [(i, 2) for i in range(30)], workers=2)) == [i * i for i in range(30)]


def test_a_task_error_is_raised_as_the_task_raised_it():
    with pytest.raises(ValueError, match="invalid literal for int"):
        list(parallel_map(int, [("1",), ("x",), ("3",)], workers=2))


def test_closing_an_endless_stream_stops_it_without_reading_far_ahead():
    # The shutdown path that hung CI under multiprocessing.Pool: an endless stream closed while work is queued.
    for _ in range(3):
        drawn = itertools.count()
        results = parallel_map(pow, ((next(drawn), 2) for _ in itertools.count()), workers=2, ahead=4)
        assert [next(results) for _ in range(5)] == [0, 1, 4, 9, 16]
        results.close()
        assert next(drawn) <= 5 + 4, "tasks are drawn at most `ahead` beyond the results taken"


def test_one_worker_runs_here_without_pickling():
    assert list(parallel_map(lambda a, b: a + b, [(1, 2), (3, 4)], workers=1)) == [3, 7]
    with pytest.raises(ValueError, match="workers=0"):
        next(parallel_map(pow, [(1, 2)], workers=0))
