"""The Pathfinder generator: release layout and metadata, balance, seeding, atomic writes, and the label semantics
checked against the generator's own bookkeeping (which snake each marker sits on, where every paddle lies)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import pathfinder
from data_prep.pathfinder_draw import Geometry, Sample, make_sample
from data_prep.pathfinder_params import DIFFICULTIES, params_for
from lra.errors import LRAError


def make(out: Path, n: int = 10, seed: int = 3, workers: int = 1, size: int = 32, difficulty: str = "curv_baseline",
         batch_size: int = 4) -> Path:
    return pathfinder.generate(out, size, difficulty, n, seed=seed, workers=workers, progress=False,
                               batch_size=batch_size)


def all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def metadata(root: Path, batch: int) -> list[list[str]]:
    text = (root / "metadata" / f"{batch}.npy").read_text(encoding="ascii")
    assert text.endswith("\n")
    return [line.split(" ") for line in text.splitlines()]


def sample(size: int, difficulty: str, label: int, seed: int) -> Sample:
    return make_sample(size, difficulty, label, np.random.default_rng(seed))


def marker_ends(s: Sample) -> list[list[tuple[int, int]]]:
    """Per marker, every (snake, end) with that chain end at the marker centre (end 0 = first tail, 1 = last head)."""
    return [[(k, end) for k, snake in enumerate(s.snakes) for end, point in enumerate(snake.ends)
             if np.allclose(point, marker, atol=1e-9)] for marker in s.markers]


def segment_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between two paddles, from dense points along both (exact to ~0.05 px for these short strokes)."""
    t = np.linspace(0.0, 1.0, 41)[:, None]
    pa, pb = a[0] + t * (a[1] - a[0]), b[0] + t * (b[1] - b[0])
    return float(np.sqrt(((pa[:, None] - pb[None]) ** 2).sum(-1)).min())


# --- files on disk ------------------------------------------------------------------------------------------


def test_layout_metadata_and_pixels(tmp_path):
    root = make(tmp_path, n=10, batch_size=4)  # batches of 4, 4 and 2
    assert root == tmp_path / "pathfinder32" / "curv_baseline"
    counts = {0: 4, 1: 4, 2: 2}
    expected = {f"imgs/{b}/sample_{i}.png" for b, c in counts.items() for i in range(c)}
    expected |= {f"metadata/{b}.npy" for b in counts}
    assert all_files(root) == expected  # also: no temporary file is left behind
    p = params_for(32, "curv_baseline")
    for b, count in counts.items():
        lines = metadata(root, b)
        assert len(lines) == count
        for i, fields in enumerate(lines):
            assert len(fields) == 11
            assert fields[:3] == [f"imgs/{b}", f"sample_{i}.png", str(i)]
            assert fields[3] in ("0", "1")
            assert float(fields[4]) == p.continuity and int(fields[5]) == 6 and int(fields[6]) == 2
            assert float(fields[7]) == p.paddle_length and float(fields[8]) == p.paddle_thickness
            assert int(fields[9]) in p.margins
            image = np.asarray(Image.open(root / fields[0] / fields[1]))
            assert image.shape == (32, 32) and image.dtype == np.uint8
            assert image.min() == 0 and image.max() == 255
            assert 0.02 < (image > 0).mean() < 0.5  # thin strokes on a black background


def test_labels_balanced_per_batch(tmp_path):
    root = make(tmp_path, n=14, batch_size=6)  # 6, 6, 2
    for b in range(3):
        labels = [int(fields[3]) for fields in metadata(root, b)]
        assert 2 * sum(labels) == len(labels)
    assert pathfinder.batch_labels(0, params_for(32, "curv_baseline"), 0, 1000).sum() == 500


def test_same_seed_same_files_any_worker_count(tmp_path, monkeypatch):
    monkeypatch.setattr(pathfinder, "CHUNK_SIZE", 2)  # several chunks per batch, so the process pool really runs
    one = make(tmp_path / "a", n=8, workers=1)
    two = make(tmp_path / "b", n=8, workers=2)
    other = make(tmp_path / "c", n=8, seed=4)
    files = all_files(one)
    assert files == all_files(two) == all_files(other)
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)
    assert any((one / f).read_bytes() != (other / f).read_bytes() for f in files if f.endswith(".png"))


# md5 of every metadata line and decoded image (pixels, not PNG bytes, so the zlib version does not matter) of
# `generate(..., seed=0, workers=1, batch_size=5)`, computed with the pure-numpy generator before the numba kernels
# (commit 47f2404): the compiled growth and drawing must keep every image and label of the stream.
PRE_NUMBA_DIGESTS = [(32, "curv_baseline", 12, "fb91f9b0f071ab21e48613c4d0d01b07"),
                     (32, "curv_contour_length_14", 12, "77b91738dec5ffca6485a3557d91d6a3"),
                     (128, "curv_contour_length_14", 3, "d4aa8b357ab3c09377d353982686d2b5")]


@pytest.mark.parametrize("size,difficulty,n,expected", PRE_NUMBA_DIGESTS)
def test_stream_is_the_pre_numba_stream(tmp_path, size, difficulty, n, expected):
    root = make(tmp_path, n=n, seed=0, size=size, difficulty=difficulty, batch_size=5)
    digest = hashlib.md5()
    for batch in range(3 if n > 10 else 1):
        for fields in metadata(root, batch):
            digest.update(" ".join(fields).encode() + np.asarray(Image.open(root / fields[0] / fields[1])).tobytes())
    assert digest.hexdigest() == expected


def test_crash_leaves_no_metadata_for_missing_images(tmp_path, monkeypatch):
    written = []
    real_write_png = pathfinder.write_png

    def failing_write_png(image, path):
        if len(written) == 6:  # the 3rd image of batch 1
            raise OSError("disk full")
        written.append(path)
        real_write_png(image, path)

    monkeypatch.setattr(pathfinder, "write_png", failing_write_png)
    with pytest.raises(OSError, match="disk full"):
        make(tmp_path, n=8, batch_size=4)
    root = tmp_path / "pathfinder32" / "curv_baseline"
    assert (root / "metadata" / "0.npy").exists() and not (root / "metadata" / "1.npy").exists()
    assert all((root / fields[0] / fields[1]).exists() for fields in metadata(root, 0))
    assert not [f for f in all_files(root) if ".tmp-" in f]


def test_bad_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(LRAError, match=r"--difficulty='hard' is not a Pathfinder difficulty; use one of curv_baseline"):
        pathfinder.generate(tmp_path, 32, "hard", 4, progress=False)
    with pytest.raises(LRAError, match=r"--size=64 is not a Pathfinder size; use 32 .* or 128"):
        pathfinder.generate(tmp_path, 64, "curv_baseline", 4, progress=False)
    for n in (0, -3):
        with pytest.raises(LRAError, match=rf"--n={n} must be a positive number of images"):
            pathfinder.generate(tmp_path, 32, "curv_baseline", n, progress=False)
    with pytest.raises(SystemExit) as exit_info:
        pathfinder.main(["--size", "64", "--difficulty", "curv_baseline", "--n", "4", "--out", str(tmp_path)])
    message = str(exit_info.value.code)
    assert message.startswith("error: --size=64") and "\n" not in message
    assert not list(tmp_path.iterdir())  # nothing written for a bad request


def test_cli_writes_release_layout_and_preview(tmp_path, capsys):
    preview = tmp_path / "grid.png"
    root = pathfinder.main(["--size", "32", "--difficulty", "curv_contour_length_9", "--n", "6", "--out",
                            str(tmp_path / "data"), "--workers", "1", "--no-progress", "--preview", str(preview)])
    assert capsys.readouterr().out.strip() == str(root)
    assert len(metadata(root, 0)) == 6
    grid = Image.open(preview)
    assert grid.mode == "L" and grid.width >= 4 * 128 and grid.height >= 2 * 128


# --- one image: semantics from the generator's bookkeeping ----------------------------------------------------


@pytest.mark.parametrize("difficulty", list(DIFFICULTIES))
@pytest.mark.parametrize("label", [0, 1])
def test_markers_sit_on_chain_ends_as_the_label_says(difficulty, label):
    for seed in range(4):
        s = sample(32, difficulty, label, seed)
        assert s.label == label
        (first,), (second,) = marker_ends(s)  # each marker is on exactly one snake end
        assert first[0] < 2 and second[0] < 2, "markers sit on the target snakes"
        assert (first[0], second[0]) == s.marker_snakes
        assert first[1] == 0 and second[1] == 1  # one marker on a tail end, one on a head end
        if label == 1:
            assert first[0] == second[0], "label 1: both ends of the same snake"
        else:
            assert first[0] != second[0], "label 0: ends of two different snakes"


@pytest.mark.parametrize("size,difficulty", [(32, "curv_contour_length_14"), (128, "curv_contour_length_14")])
def test_growth_follows_the_paddle_rules(size, difficulty):
    p = params_for(size, difficulty)
    s = sample(size, difficulty, 1, seed=11)
    geo = Geometry.make(p, s.margin)
    assert s.margin in p.margins
    assert [len(snake.paddles) for snake in s.snakes[:2]] == [p.contour_length] * 2
    assert all(len(snake.paddles) == p.distractor_length for snake in s.snakes[2:])
    assert 1 <= len(s.snakes) - 2 <= p.n_distractors
    paddles = [(k, j, paddle) for k, snake in enumerate(s.snakes) for j, paddle in enumerate(snake.paddles)]
    for _, _, (tail, head) in paddles:
        assert np.linalg.norm(head - tail) == pytest.approx(p.paddle_length)
        lo, hi = p.padding - 0.5 + geo.radius, size - p.padding + 0.5 - geo.radius
        assert lo - 1e-9 <= min(tail.min(), head.min()) and max(tail.max(), head.max()) <= hi + 1e-9
    for snake in s.snakes:
        for (t0, h0), (t1, h1) in zip(snake.paddles[:-1], snake.paddles[1:], strict=True):
            u0, u1 = (h0 - t0) / p.paddle_length, (h1 - t1) / p.paddle_length
            pivot = h0 + s.margin * u0  # the next paddle starts `margin` past the pivot, `margin` past the head
            assert np.allclose(t1, pivot + s.margin * u1)
            turn = math.acos(float(np.clip(u0 @ u1, -1.0, 1.0)))
            assert turn < math.pi / 2 / p.continuity + 1e-9  # larger turns have weight 0
    # No two strokes come closer than the footprints allow (2 * (thickness/2 + margin), less the pixel grid's
    # slack of <= 1 px), except a paddle and its successor, which meet at their pivot by construction.
    for a, (k, j, pa) in enumerate(paddles):
        for k2, j2, pb in paddles[a + 1:]:
            if k2 == k and abs(j2 - j) == 1:
                continue
            assert segment_distance(pa, pb) > 2 * geo.radius - 1.0, (k, j, k2, j2)


def test_turns_are_drawn_from_the_continuity_weights():
    """The turn at each pivot is drawn with the cos^2 weights, not the likeliest free direction every time: at
    continuity 1 about 1 turn in 6 is within half a candidate step of straight (greedy choice: about 3 in 5)."""
    turns = []
    for seed in range(5):
        for snake in sample(32, "curv_contour_length_14", 0, seed).snakes[:2]:
            step = snake.paddles[:, 1] - snake.paddles[:, 0]
            angle = np.arctan2(step[:, 0], step[:, 1])
            turns.extend(np.angle(np.exp(1j * np.diff(angle))))
    delta = Geometry.make(params_for(32, "curv_contour_length_14"), 1).delta
    assert float(np.mean(np.abs(turns) < delta / 2)) < 0.35
    assert 0.4 < float(np.std(turns)) < 1.0
    assert abs(float(np.mean(turns))) < 0.2  # no preferred side


@pytest.mark.parametrize("size,difficulty,seed", [(32, "curv_baseline", 0), (32, "curv_contour_length_14", 1),
                                                   (128, "curv_contour_length_14", 2)])
def test_snakes_and_markers_are_drawn(size, difficulty, seed):
    s = sample(size, difficulty, seed % 2, seed)
    image = s.image
    assert image.shape == (size, size) and image.dtype == np.uint8
    assert image.min() == 0 and image.max() == 255
    for r, c in np.floor(s.markers).astype(int):
        assert image[r, c] >= 128  # a marker disc is (near) full brightness at its centre
    for snake in s.snakes:
        assert len(snake.pixels) > 0 and (image[tuple(snake.pixels.T)] > 0).all()
        for tail, head in snake.paddles:
            r, c = np.floor((tail + head) / 2).astype(int)
            assert image[r, c] > 0, "every paddle is visible at its middle"
    lit = np.zeros_like(image, bool)
    for snake in s.snakes:
        lit[tuple(snake.pixels.T)] = True
    yy, xx = np.mgrid[:size, :size] + 0.5
    for r, c in s.markers:
        lit |= (yy - r) ** 2 + (xx - c) ** 2 <= (params_for(size, difficulty).marker_radius + 1.5) ** 2
    assert (image[~lit] == 0).all(), "nothing is drawn away from the snakes and markers"


def test_same_rng_same_image_and_labels_are_respected():
    a, b = sample(32, "curv_contour_length_9", 0, 5), sample(32, "curv_contour_length_9", 0, 5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.markers, b.markers)
    assert not np.array_equal(a.image, sample(32, "curv_contour_length_9", 0, 6).image)
    with pytest.raises(LRAError, match="label=2 must be 0 or 1"):
        sample(32, "curv_baseline", 2, 0)
