"""The ListOps generator against an evaluator, parser and length counter written here, on small settings."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest

from data_prep import listops
from lra.errors import LRAError
from tests.task_fixtures import listops_source

# Small trees: fast, yet every operator and nesting occur.
SMALL = dict(min_length=10, max_length=60, max_depth=4, max_args=10)
FILES = ["basic_test.tsv", "basic_train.tsv", "basic_val.tsv"]


def make(out: Path, seed: int = 0, workers: int = 1, sizes=(300, 50, 50), **settings) -> dict[str, Path]:
    return listops.generate(out, *sizes, seed=seed, workers=workers, progress=False, **(SMALL | settings))


def rows(path: Path) -> list[tuple[str, str]]:
    lines = path.read_bytes().decode("ascii").split("\n")  # bytes: no newline translation hides a stray \r
    assert lines[0] == "Source\tTarget" and lines[-1] == ""
    out = []
    for line in lines[1:-1]:
        fields = line.split("\t")
        assert len(fields) == 2, line
        out.append((fields[0], fields[1]))
    return out


def all_rows(paths: dict[str, Path]) -> list[tuple[str, str]]:
    return [row for split in ("train", "val", "test") for row in rows(paths[split])]


def parse_pairs(source: str):
    """`( A B )` -> (A, B), with a stack; atoms stay strings. Fails on anything but a single well-formed pair tree."""
    stack: list = []
    for token in source.split(" "):
        if token == "(":
            stack.append("(")
        elif token == ")":
            right, left, opener = stack.pop(), stack.pop(), stack.pop()
            assert opener == "(" and "(" not in (left, right)
            stack.append((left, right))
        else:
            stack.append(token)
    assert len(stack) == 1 and isinstance(stack[0], tuple), source
    return stack[0]


def write_pairs(tree) -> str:
    return tree if isinstance(tree, str) else f"( {write_pairs(tree[0])} {write_pairs(tree[1])} )"


def flat(source: str) -> list[str]:
    """The tokens that count towards the length: operators, digits and `]`."""
    return [t for t in source.split(" ") if t not in ("(", ")")]


def nest(tokens: list[str]):
    """Flat prefix form -> nested [op, children...] lists (digits as ints), with a stack of open operators."""
    stack: list[list] = [["top"]]
    for token in tokens:
        if token.startswith("["):
            stack.append([token[1:]])
        elif token == "]":
            node = stack.pop()
            stack[-1].append(node)
        else:
            stack[-1].append(int(token))
    (top,) = stack
    assert len(top) == 2, tokens
    return top[1]


def value(node) -> int:
    if isinstance(node, int):
        return node
    op, args = node[0], [value(a) for a in node[1:]]
    return {
        "MIN": min, "MAX": max, "MED": lambda v: int(statistics.median(v)), "SM": lambda v: sum(v) % 10,
    }[op](args)


def wrapped(node) -> str:
    """The LRA wrapping of a nested tree, via the test suite's own one-node serializer."""
    return str(node) if isinstance(node, int) else listops_source(node[0], [wrapped(a) for a in node[1:]])


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, Path]:
    return make(tmp_path_factory.mktemp("listops") / "out")


def test_files_have_the_release_format(small):
    assert sorted(p.name for p in small["train"].parent.iterdir()) == FILES  # no temporary files left behind
    counts = [len(rows(small[split])) for split in ("train", "val", "test")]
    assert counts == [300, 50, 50]
    for _, target in all_rows(small):
        assert target in [str(d) for d in range(10)]
    # The harness's own reader takes the files as they are (lengths < 60 tokens fit max_len=59).
    from lra.data.listops import read_tsv

    sequences, labels = read_tsv(small["val"], max_len=59)
    assert len(sequences) == 50 and labels == [int(t) for _, t in rows(small["val"])]


def test_labels_agree_with_an_independent_evaluator(small):
    seen_ops = set()
    for source, target in all_rows(small):
        tree = nest(flat(source))
        seen_ops.add(tree[0])
        assert value(tree) == int(target), source
    assert seen_ops == {"MIN", "MAX", "MED", "SM"}


def test_serialization_wraps_every_pair_and_round_trips(small):
    for source, _ in all_rows(small):
        assert write_pairs(parse_pairs(source)) == source
        assert wrapped(nest(flat(source))) == source


def test_lengths_are_strictly_inside_the_bounds(tmp_path):
    paths = make(tmp_path, min_length=10, max_length=20, sizes=(400, 0, 0))
    lengths = {len(flat(source)) for source, _ in all_rows(paths)}
    assert min(lengths) > 10 and max(lengths) < 20
    assert {11, 19} <= lengths  # both ends of the open interval are reachable and reached


def test_sources_are_unique(tmp_path):
    # Depth 2, up to 3 arguments: 400 two-digit trees among 4400, so draws repeat trees often.
    paths = make(tmp_path, min_length=3, max_length=6, max_depth=2, max_args=3, sizes=(800, 100, 100))
    sources = [source for source, _ in all_rows(paths)]
    assert len(sources) == 1000 and len(set(sources)) == len(sources)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, small):
    again = make(tmp_path / "again")
    other = make(tmp_path / "other", seed=1)
    for split in ("train", "val", "test"):
        assert again[split].read_bytes() == small[split].read_bytes()
        assert other[split].read_bytes() != small[split].read_bytes()


def test_worker_count_does_not_change_the_output(tmp_path):
    # Long enough trees that a chunk accepts few: the request spans many chunks, computed out of order by 2 workers.
    settings = dict(min_length=100, max_length=300, max_depth=8, sizes=(1500, 100, 100))
    one = make(tmp_path / "one", workers=1, **settings)
    two = make(tmp_path / "two", workers=2, **settings)
    for split in ("train", "val", "test"):
        assert one[split].read_bytes() == two[split].read_bytes()


def hand_levels() -> list[listops.Level]:
    """[MAX 2 9 [MIN 4 7] 0] and [MED 1 2 3 9] (even count) and [SM 9 8], built level by level."""
    i = np.array
    return [
        listops.Level(i([0, 1, 2]), i([listops.MAX, listops.MED, listops.SM]), i([4, 4, 2]), i([-1, -1, -1])),
        listops.Level(i([0] * 4 + [1] * 4 + [2] * 2), i([2, 9, listops.MIN, 0, 1, 2, 3, 9, 9, 8]),
                      i([0, 0, 2, 0, 0, 0, 0, 0, 0, 0]), i([0] * 4 + [1] * 4 + [2] * 2)),
        listops.Level(i([0, 0]), i([4, 7]), i([0, 0]), i([2, 2])),
    ]


def test_hand_built_trees_serialize_and_evaluate_as_lra():
    levels = hand_levels()
    assert listops.serialize(levels) == [
        "( ( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )",
        "( ( ( ( ( [MED 1 ) 2 ) 3 ) 9 ) ] )",
        "( ( ( [SM 9 ) 8 ) ] )",
    ]
    assert listops.evaluate(levels).tolist() == [9, 2, 7]


def test_node_draws_follow_the_lra_probabilities():
    settings = listops.Settings(seed=0, min_length=0, max_length=10**6, max_depth=3, max_args=5)
    levels, accepted = listops.grow(np.random.default_rng(0), settings, 20_000)
    assert accepted.all()
    roots, middle, deepest = levels
    for level in (roots, middle):
        is_op = level.n_args > 0
        assert abs(is_op.mean() - 0.25) < 0.015
        assert set(np.unique(level.n_args[is_op])) == {2, 3, 4, 5}
        assert set(np.unique(level.symbol[is_op])) == {listops.MIN, listops.MAX, listops.MED, listops.SM}
        assert np.bincount(level.symbol[~is_op], minlength=10).min() > 0.08 * (~is_op).sum()
    assert not deepest.n_args.any()  # forced digits at max_depth
    assert len(middle.tree) == roots.n_args.sum() and len(deepest.tree) == middle.n_args.sum()


def test_impossible_requests_fail_clearly_and_leave_nothing(tmp_path):
    # Depth 2, two arguments: 10 digits + 4 * 100 operator nodes = 410 distinct trees of length < 5.
    with pytest.raises(LRAError, match="only 410 of 411 unique trees"):
        make(tmp_path, min_length=0, max_length=5, max_depth=2, max_args=2, sizes=(400, 11, 0))
    with pytest.raises(LRAError, match="allow trees of length <= 4"):
        make(tmp_path, min_length=4, max_length=50, max_depth=2, max_args=2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--train", "-1"], "--train=-1"),
        (["--test", "-5"], "--test=-5"),
        (["--min-length", "60", "--max-length", "60"], "--min-length=60 --max-length=60"),
        (["--max-args", "1"], "--max-args=1"),
        (["--min-length", "100", "--max-depth", "2"], "--max-depth=2"),
    ],
)
def test_bad_arguments_give_one_line(tmp_path, args, names):
    with pytest.raises(SystemExit) as err:
        listops.main(["--out", str(tmp_path / "out"), "--no-progress", *args])
    message = str(err.value.code)
    assert message.startswith("error: ") and names in message and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_command_line_writes_the_files(tmp_path, capsys):
    paths = listops.main(["--out", str(tmp_path), "--train", "20", "--val", "5", "--test", "5", "--min-length", "10",
                          "--max-length", "60", "--max-depth", "4", "--workers", "1", "--no-progress"])
    assert sorted(p.name for p in tmp_path.iterdir()) == FILES
    assert [len(rows(paths[s])) for s in ("train", "val", "test")] == [20, 5, 5]
    assert "train: " in capsys.readouterr().out
