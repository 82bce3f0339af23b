"""Work spread over processes, for data preparation (ListOps and Pathfinder generation, PNG decoding).

Workers are spawned, never forked: the parent is often a training process whose threads (torch's pools, tqdm's
monitor, Lightning's) may hold locks at the moment of a fork, and a forked child inherits them held. The pool is a
`ProcessPoolExecutor` rather than `multiprocessing.Pool`, whose `terminate()` can deadlock between its own
task-handler thread and the queue lock (it hung this project's CI). A spawned worker imports the task's module
afresh, so task functions live at module level in modules that import quickly (no torch).
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

Result = TypeVar("Result")


def parallel_map(fn: Callable[..., Result], tasks: Iterable[tuple], workers: int,
                 ahead: int | None = None) -> Iterator[Result]:
    """`fn(*task)` for each task, yielded in task order, computed by `workers` processes at most `ahead` tasks
    (default `2 * workers`) in advance, so an endless or huge task stream never piles up in memory.

    `workers == 1` runs in this process. Closing the iterator early, or an error in a task, cancels the tasks not
    yet started and waits for the running ones; the error is raised here as the task raised it.
    """
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1")
    if workers == 1:
        yield from (fn(*task) for task in tasks)
        return
    tasks = iter(tasks)
    ahead = ahead or 2 * workers
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        pending: deque[Future] = deque(pool.submit(fn, *task) for task in itertools.islice(tasks, ahead))
        while pending:
            result = pending.popleft().result()
            pending.extend(pool.submit(fn, *task) for task in itertools.islice(tasks, 1))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
