"""ListOps generator: the LRA algorithm and file format, vectorised with numpy and spread over processes.

`python -m data_prep.listops --out DIR` writes DIR/basic_{train,val,test}.tsv (header `Source<TAB>Target`) as the
LRA release does: random trees of MIN/MAX/MED/SM over digits, kept when `min_length < length < max_length`, unique,
split in order. The LRA code grows one tree at a time by recursion; here a whole chunk of trees grows level by level
(breadth first, a few numpy calls per level), a tree stops growing as soon as it is sure to reach `max_length`, and
only the kept trees are serialised and evaluated, again level by level. The tree distribution is the same: every
node's draws are independent of the order they are made in.

Reproducibility: chunk `i` draws from its own generator seeded with `(seed, i)` and chunks are merged in index order,
keeping each tree's first occurrence; so the files depend on the arguments and the seed, never on `--workers`.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lra.atomic import atomic_file
from lra.errors import LRAError
from lra.parallel import parallel_map

SPLITS = ("train", "val", "test")
HEADER = "Source\tTarget"
OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
OPERATOR_P = 0.25  # LRA: r = random(); r <= 0.25 makes an operator (below max_depth), else a digit

# Node symbols: digits are themselves, then the operators. Names are written as 4 bytes (the space after a 4-letter
# name comes from the buffer's fill); NAME_WIDTH is the bytes a symbol takes with its trailing space.
MIN, MAX, MED, SM = 10, 11, 12, 13
NAMES = np.frombuffer("".join(f"{name:<4}" for name in OPERATORS).encode(), dtype=np.uint8).reshape(4, 4)
NAME_WIDTH = np.array([2] * 10 + [len(name) + 1 for name in OPERATORS])

# Each chunk grows this many root nodes (fewer when trees may be very long, to bound a chunk's memory).
CHUNK_ROOTS = 4096
CHUNK_NODES = 1 << 23
# Give up when this many consecutive chunks add no new unique tree: the request is impossible or far too rare.
MAX_IDLE_CHUNKS = 64


@dataclass(frozen=True)
class Settings:
    """What a chunk needs to grow trees; the seed and these fix every byte of the output."""

    seed: int
    min_length: int
    max_length: int
    max_depth: int
    max_args: int

    @property
    def chunk_roots(self) -> int:
        return int(np.clip(CHUNK_NODES // max(self.max_length, 1), 64, CHUNK_ROOTS))


@dataclass
class Level:
    """The nodes at one depth of all trees in a chunk, ordered by tree, then parent, then child position.

    `symbol` is the digit (0..9) or operator code; `n_args` is 0 for digits; `parent` indexes the level above.
    """

    tree: np.ndarray
    symbol: np.ndarray
    n_args: np.ndarray
    parent: np.ndarray


def draw_nodes(rng: np.random.Generator, n: int, settings: Settings, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Symbols and argument counts of `n` nodes at `depth`, all from one uniform draw per node.

    As in LRA: u <= 0.25 makes an operator (never at max_depth), else a digit uniform over 0..9. Given an operator,
    u / 0.25 is uniform again and picks one of the 4 * (max_args - 1) equally likely (operator, argument count) pairs.
    """
    u = rng.random(n)
    if depth >= settings.max_depth:
        return np.minimum(u * 10, 9).astype(np.int8), np.zeros(n, dtype=np.int64)
    symbol = np.clip((u - OPERATOR_P) / (1 - OPERATOR_P) * 10, 0, 9).astype(np.int8)
    n_args = np.zeros(n, dtype=np.int64)
    ops = u <= OPERATOR_P
    pairs = len(OPERATORS) * (settings.max_args - 1)
    pair = np.minimum(u[ops] / OPERATOR_P * pairs, pairs - 1).astype(np.int64)
    symbol[ops] = MIN + pair % len(OPERATORS)
    n_args[ops] = 2 + pair // len(OPERATORS)
    return symbol, n_args


def grow(rng: np.random.Generator, settings: Settings, n_roots: int) -> tuple[list[Level], np.ndarray]:
    """Grow `n_roots` trees breadth first; returns the levels and a mask of the trees whose length is accepted.

    `bound` counts every drawn node (an operator twice: itself and its `]`) plus 1 per child not yet drawn, so it
    never exceeds the final length: a tree stops growing as soon as it reaches max_length, and equals it when done.
    """
    bound = np.ones(n_roots, dtype=np.int64)
    alive = np.ones(n_roots, dtype=bool)
    tree = np.arange(n_roots)
    parent = np.full(n_roots, -1)
    levels = []
    depth = 1
    while tree.size:
        symbol, n_args = draw_nodes(rng, tree.size, settings, depth)
        levels.append(Level(tree, symbol, n_args, parent))
        ops = np.flatnonzero(n_args)
        bound += np.bincount(tree[ops], weights=n_args[ops] + 1, minlength=n_roots).astype(np.int64)
        alive &= bound < settings.max_length
        ops = ops[alive[tree[ops]]]
        parent = np.repeat(ops, n_args[ops])
        tree = tree[parent]
        depth += 1
    accepted = alive & (bound > settings.min_length)
    return levels, accepted


def keep_trees(levels: list[Level], accepted: np.ndarray) -> list[Level]:
    """Only the accepted trees' nodes, re-indexed (tree ids become 0..k-1 in their original order)."""
    tree_rank = np.cumsum(accepted) - 1
    kept, new_index = [], None
    for level in levels:
        keep = accepted[level.tree]
        rows = np.flatnonzero(keep)
        if not rows.size:
            break  # deeper levels hold only rejected trees' nodes
        parent = level.parent[rows] if new_index is None else new_index[level.parent[rows]]
        kept.append(Level(tree_rank[level.tree[rows]], level.symbol[rows], level.n_args[rows], parent))
        new_index = np.cumsum(keep) - 1
    return kept


def first_children(level: Level) -> np.ndarray:
    """Index (in the next level) of each node's first child; children of a node are contiguous and in order."""
    return np.cumsum(level.n_args) - level.n_args


def evaluate(levels: list[Level]) -> np.ndarray:
    """Value of every tree, bottom up: MIN, MAX, MED = int(median), SM = sum mod 10.

    All values are digits, so an operator's arguments are summed up as counts per digit: its MIN, MAX and median
    halves are the first digits whose running count passes a threshold, its sum is counts . (0..9).
    """
    below = next_parent = None
    for level in reversed(levels):
        value = level.symbol.astype(np.int64)
        ops = np.flatnonzero(level.n_args)
        if ops.size:
            k, op = level.n_args[ops], level.symbol[ops]
            rank = np.cumsum(level.n_args > 0) - 1  # parent index -> row of its operator
            counts = np.bincount(rank[next_parent] * 10 + below, minlength=ops.size * 10).reshape(ops.size, 10)
            running = counts.cumsum(axis=1)
            low = np.select([op == MIN, op == MAX], [0, k - 1], (k - 1) // 2)  # MED: the two middle positions
            high = np.where(op == MED, k // 2, low)
            digit = ((running > low[:, None]).argmax(axis=1) + (running > high[:, None]).argmax(axis=1)) // 2
            value[ops] = np.where(op == SM, counts @ np.arange(10) % 10, digit)
        below, next_parent = value, level.parent
    return below


def serialize(levels: list[Level]) -> list[str]:
    """The LRA text of every tree, written straight into one byte buffer (positions computed level by level).

    Every token is followed by a space. An operator with k children is `( ` * (k+1), its name, each child followed
    by `) `, then `] ) `: so its children start 2(k+1) + len(name + " ") bytes in, 2 bytes after their elder sibling.
    """
    sizes, below = [], None
    for level in reversed(levels):
        ops = level.n_args > 0
        size = np.where(ops, 4 * level.n_args + 6 + NAME_WIDTH[level.symbol], 2)
        if below is not None:
            size += np.bincount(below.parent, weights=sizes[0], minlength=size.size).astype(np.int64)
        sizes.insert(0, size)
        below = level
    bounds = np.concatenate([[0], np.cumsum(sizes[0])])
    text = np.full(int(bounds[-1]), ord(" "), dtype=np.uint8)
    start = bounds[:-1]
    for depth, level in enumerate(levels):
        ops, digits = np.flatnonzero(level.n_args), np.flatnonzero(level.n_args == 0)
        text[start[digits]] = level.symbol[digits] + ord("0")
        op_start, k, symbol, size = start[ops], level.n_args[ops], level.symbol[ops], sizes[depth][ops]
        runs = k + 1
        run_base = np.repeat(op_start - 2 * (np.cumsum(runs) - runs), runs)
        text[run_base + 2 * np.arange(int(runs.sum()))] = ord("(")
        name_at = op_start + 2 * runs
        text[name_at[:, None] + np.arange(NAMES.shape[1])] = NAMES[symbol - MIN]
        text[op_start + size - 4] = ord("]")
        text[op_start + size - 2] = ord(")")
        if depth + 1 < len(levels):
            child = levels[depth + 1]
            child_size = sizes[depth + 1]
            step = child_size + 2
            before = np.cumsum(step) - step  # bytes before each child in its level, each sibling's `) ` included
            first = first_children(level)[child.parent]
            name_end = start + 2 * (level.n_args + 1) + NAME_WIDTH[level.symbol]
            start = name_end[child.parent] + before - before[first]
            text[start + child_size] = ord(")")
    text[bounds[1:] - 1] = ord("\n")  # each tree's last space separates it from the next
    return text.tobytes().decode("ascii").split("\n")[:-1]


def make_chunk(settings: Settings, index: int) -> tuple[list[str], list[int], list[bytes]]:
    """Accepted trees of chunk `index` in draw order: sources, labels and digests (for deduplication)."""
    rng = np.random.default_rng([settings.seed, index])
    levels, accepted = grow(rng, settings, settings.chunk_roots)
    if not accepted.any():
        return [], [], []
    levels = keep_trees(levels, accepted)
    sources = serialize(levels)
    digests = [hashlib.blake2b(s.encode(), digest_size=16).digest() for s in sources]
    return sources, evaluate(levels).tolist(), digests


def chunks(settings: Settings, workers: int) -> Iterator[tuple[list[str], list[int], list[bytes]]]:
    """Chunks 0, 1, 2, ... in order, `workers` processes computing a few ahead; endless, the caller closes it."""
    return parallel_map(make_chunk, ((settings, index) for index in itertools.count()), workers)


def longest_tree(max_depth: int, max_args: int, cap: int) -> int:
    """Length of the longest tree these settings allow (capped: it grows like max_args ** max_depth)."""
    length = 1
    for _ in range(max_depth - 1):
        length = min(2 + max_args * length, cap)
    return length


def check_args(n_train: int, n_val: int, n_test: int, seed: int, min_length: int, max_length: int,
               max_depth: int, max_args: int, workers: int) -> None:
    for flag, value in (("--train", n_train), ("--val", n_val), ("--test", n_test), ("--seed", seed)):
        if value < 0:
            raise LRAError(f"{flag}={value} is negative; pass a number >= 0")
    if min_length < 0 or min_length >= max_length:
        raise LRAError(f"--min-length={min_length} --max-length={max_length}: need 0 <= min-length < max-length "
                       "(kept trees have min-length < length < max-length)")
    if max_depth < 1:
        raise LRAError(f"--max-depth={max_depth} must be >= 1")
    if max_args < 2:
        raise LRAError(f"--max-args={max_args} must be >= 2 (operators take 2..max-args arguments)")
    if workers < 1:
        raise LRAError(f"--workers={workers} must be >= 1")
    longest = longest_tree(max_depth, max_args, cap=max_length)
    if longest <= min_length:
        raise LRAError(f"--max-depth={max_depth} --max-args={max_args} allow trees of length <= {longest}, none above "
                       f"--min-length={min_length}; lower --min-length or raise --max-depth/--max-args")


def generate(out_dir: str | Path, n_train: int = 96_000, n_val: int = 2_000, n_test: int = 2_000, seed: int = 0,
             min_length: int = 500, max_length: int = 2000, max_depth: int = 10, max_args: int = 10,
             workers: int | None = None, progress: bool = True) -> dict[str, Path]:
    """Write `basic_{train,val,test}.tsv` under `out_dir`; returns split -> path. All three appear only when done."""
    workers = (os.cpu_count() or 1) if workers is None else workers
    check_args(n_train, n_val, n_test, seed, min_length, max_length, max_depth, max_args, workers)
    settings = Settings(seed, min_length, max_length, max_depth, max_args)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LRAError(f"--out {out_dir}: cannot create the directory ({err.strerror})") from err
    paths = {split: out_dir / f"basic_{split}.tsv" for split in SPLITS}
    quota = [(split, n) for split, n in zip(SPLITS, (n_train, n_val, n_test), strict=True)]
    total = n_train + n_val + n_test
    with ExitStack() as renames:  # the three are renamed into place only after all of them are written and closed
        temps = {split: renames.enter_context(atomic_file(path)) for split, path in paths.items()}
        with ExitStack() as opened:
            files = {
                split: opened.enter_context(open(temp, "w", encoding="ascii", newline="\n"))
                for split, temp in temps.items()
            }
            for f in files.values():
                f.write(HEADER + "\n")
            write_unique(files, quota, total, settings, workers, progress)
    return paths


def write_unique(files: dict, quota: list[tuple[str, int]], total: int, settings: Settings, workers: int,
                 progress: bool) -> None:
    """Stream the first `total` unique trees into the split files in order (train first, then val, then test)."""
    targets = iter([split for split, n in quota for _ in range(n)])
    seen: set[bytes] = set()
    idle = 0
    with tqdm(total=total, desc="listops trees", unit="tree", disable=not progress or total == 0) as bar:
        if total == 0:
            return
        stream = chunks(settings, workers)
        try:
            for sources, labels, digests in stream:
                added = 0
                for source, label, digest in zip(sources, labels, digests, strict=True):
                    if digest in seen:
                        continue
                    seen.add(digest)
                    files[next(targets)].write(f"{source}\t{label}\n")
                    added += 1
                    if len(seen) == total:
                        break
                bar.update(added)
                if len(seen) == total:
                    return
                idle = 0 if added else idle + 1
                if idle >= MAX_IDLE_CHUNKS:
                    raise LRAError(
                        f"only {len(seen)} of {total} unique trees after {MAX_IDLE_CHUNKS} chunks without a new one: "
                        f"--min-length={settings.min_length} --max-length={settings.max_length} "
                        f"--max-depth={settings.max_depth} --max-args={settings.max_args} allow too few; widen the "
                        "length range, raise --max-depth/--max-args or ask for fewer examples"
                    )
        finally:
            stream.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m data_prep.listops", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory (e.g. data/listops-1000)")
    parser.add_argument("--train", type=int, default=96_000, help="training examples (default: 96000)")
    parser.add_argument("--val", type=int, default=2_000, help="validation examples (default: 2000)")
    parser.add_argument("--test", type=int, default=2_000, help="test examples (default: 2000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--min-length", type=int, default=500, help="keep trees longer than this (default: 500)")
    parser.add_argument("--max-length", type=int, default=2000, help="keep trees shorter than this (default: 2000)")
    parser.add_argument("--max-depth", type=int, default=10, help="deepest nesting level (default: 10)")
    parser.add_argument("--max-args", type=int, default=10, help="most arguments of an operator (default: 10)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Path]:
    args = parse_args(argv)
    try:
        paths = generate(args.out, args.train, args.val, args.test, args.seed, args.min_length, args.max_length,
                         args.max_depth, args.max_args, args.workers, progress=not args.no_progress)
    except LRAError as err:
        raise SystemExit(f"error: {err}") from None
    for split, path in paths.items():
        print(f"{split}: {path}")
    return paths


if __name__ == "__main__":
    main()
