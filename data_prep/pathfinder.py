"""Pathfinder / Path-X generator: Linsley et al. 2018 as customised by LRA, written in the LRA release layout.

`python -m data_prep.pathfinder --size 32 --difficulty curv_contour_length_14 --n 200000 --out DIR` writes
DIR/pathfinder32/curv_contour_length_14/imgs/<b>/sample_<i>.png (grey, background 0, brightest 255) and
DIR/pathfinder32/curv_contour_length_14/metadata/<b>.npy, which, as in the release, is plain text despite its name:
one line per image, `imgs/<b> sample_<i>.png <i> <label> <continuity> <contour_length> <distractor_length>
<paddle_length> <paddle_thickness> <paddle_margin> <n_paddle_contrasts>` (the fields of the original generator).
The drawing is in `pathfinder_draw.py`: growth compiled with numba (`pathfinder_grow.py`; the first run compiles it,
about 10 s, and caches it), rendering in `pathfinder_render.py`. It makes the same images and labels as the
earlier pure-numpy generator for the same seed (a test pins their checksum); only the last bits of the paddle
coordinates may differ (see `pathfinder_grow.py`).

Reproducibility: batch b's labels come from a generator seeded with (seed, size, contour length, b, 0) and image i
of it from (seed, size, contour length, b, 1, i); chunks of images run in any process and order, so the files
depend on the arguments and the seed, never on `--workers`. Every file is written under a temporary name and
renamed when complete, and a batch's metadata only after all its images: a crashed run leaves no metadata line
pointing at a missing image.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from data_prep.pathfinder_draw import Sample, make_sample
from data_prep.pathfinder_params import DIFFICULTIES, SIZES, Params, params_for
from lra.atomic import atomic_file
from lra.atomic import write_text as atomic_write_text
from lra.errors import LRAError
from lra.parallel import parallel_map

__all__ = ["BATCH_SIZE", "DIFFICULTIES", "SIZES", "Sample", "generate", "main", "make_sample", "image_rng"]

BATCH_SIZE = 1000  # images per imgs/<b> directory and metadata/<b>.npy file, as in the LRA release
CHUNK_SIZE = 25  # images per task handed to a worker process: small enough to keep all workers busy


def dataset_dir(out_dir: Path | str, size: int, difficulty: str) -> Path:
    return Path(out_dir) / f"pathfinder{size}" / difficulty


def batch_labels(seed: int, params: Params, batch: int, count: int) -> np.ndarray:
    """Labels of one batch: half 1 (the extra one of an odd count is 0), in a seeded random order."""
    rng = np.random.default_rng([seed, params.size, params.contour_length, batch, 0])
    return rng.permutation(np.arange(count) % 2).astype(np.int64)


def image_rng(seed: int, params: Params, batch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, params.size, params.contour_length, batch, 1, index])


def metadata_line(params: Params, batch: int, index: int, label: int, margin: int) -> str:
    fields = [f"imgs/{batch}", f"sample_{index}.png", index, label, params.continuity, params.contour_length,
              params.distractor_length, params.paddle_length, params.paddle_thickness, margin, 1]
    return " ".join(str(f) for f in fields)


def write_png(image: np.ndarray, path: Path) -> None:
    with atomic_file(path, durable=False) as temp:
        Image.fromarray(image).save(temp, format="PNG")


def write_text(text: str, path: Path) -> None:
    atomic_write_text(path, text, encoding="ascii")


@dataclass(frozen=True)
class Chunk:
    """Images [start, stop) of batch `batch`, with their labels: the unit of work of one process."""

    root: Path
    size: int
    difficulty: str
    seed: int
    batch: int
    start: int
    labels: tuple[int, ...]


def render_chunk(chunk: Chunk) -> tuple[int, list[tuple[int, str]]]:
    """Draw and save a chunk's images; returns (batch, [(index, metadata line)])."""
    params = params_for(chunk.size, chunk.difficulty)
    folder = chunk.root / "imgs" / str(chunk.batch)
    lines = []
    for offset, label in enumerate(chunk.labels):
        index = chunk.start + offset
        sample = make_sample(chunk.size, chunk.difficulty, label, image_rng(chunk.seed, params, chunk.batch, index))
        write_png(sample.image, folder / f"sample_{index}.png")
        lines.append((index, metadata_line(params, chunk.batch, index, label, sample.margin)))
    return chunk.batch, lines


def plan(root: Path, size: int, difficulty: str, n: int, seed: int, batch_size: int) -> tuple[list[Chunk], dict]:
    """All chunks in order, and how many images each batch holds."""
    params = params_for(size, difficulty)
    chunks, counts = [], {}
    for batch in range((n + batch_size - 1) // batch_size):
        count = min(batch_size, n - batch * batch_size)
        counts[batch] = count
        labels = batch_labels(seed, params, batch, count).tolist()
        for start in range(0, count, CHUNK_SIZE):
            chunks.append(Chunk(root, size, difficulty, seed, batch, start, tuple(labels[start:start + CHUNK_SIZE])))
    return chunks, counts


def check_args(size: int, difficulty: str, n: int, seed: int, workers: int, batch_size: int) -> None:
    params_for(size, difficulty)
    if not isinstance(n, int) or n <= 0:
        raise LRAError(f"--n={n} must be a positive number of images")
    if not isinstance(seed, int) or seed < 0:
        raise LRAError(f"--seed={seed} must be an integer >= 0")
    if not isinstance(workers, int) or workers <= 0:
        raise LRAError(f"--workers={workers} must be a positive number of processes")
    if batch_size <= 0:
        raise LRAError(f"batch_size={batch_size} must be positive")


def generate(out_dir: Path | str, size: int, difficulty: str, n: int, seed: int = 0, workers: int | None = None,
             progress: bool = True, batch_size: int = BATCH_SIZE) -> Path:
    """Write n images (half of each batch label 1) and their metadata; returns the difficulty directory."""
    workers = (os.cpu_count() or 1) if workers is None else workers
    check_args(size, difficulty, n, seed, workers, batch_size)
    root = dataset_dir(out_dir, size, difficulty)
    chunks, counts = plan(root, size, difficulty, n, seed, batch_size)
    try:
        (root / "metadata").mkdir(parents=True, exist_ok=True)
        for batch in counts:
            (root / "imgs" / str(batch)).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LRAError(f"cannot create {root}: {err.strerror}; pass a writable --out") from err

    done: dict[int, list[tuple[int, str]]] = {batch: [] for batch in counts}

    def finish(batch: int, lines: list[tuple[int, str]], bar: tqdm) -> None:
        done[batch].extend(lines)
        bar.update(len(lines))
        if len(done[batch]) == counts[batch]:  # every image of the batch is on disk: publish its metadata
            text = "".join(line + "\n" for _, line in sorted(done.pop(batch)))
            write_text(text, root / "metadata" / f"{batch}.npy")

    with tqdm(total=n, desc=f"pathfinder{size} {difficulty}", unit="img", file=sys.stderr,
              disable=not progress) as bar:
        for result in parallel_map(render_chunk, ((chunk,) for chunk in chunks), min(workers, len(chunks))):
            finish(*result, bar)
    return root


def write_preview(root: Path, path: Path | str, count: int = 16, columns: int = 4) -> Path:
    """A grid of the first `count` images of batch 0, each with its label above it, scaled to about 128 px."""
    lines = (root / "metadata" / "0.npy").read_text(encoding="ascii").splitlines()[:count]
    cells = []
    for line in lines:
        fields = line.split()
        with Image.open(root / fields[0] / fields[1]) as png:
            image = png.copy()
        scale = max(1, 128 // image.width)
        cells.append((image.resize((image.width * scale, image.height * scale), Image.NEAREST), fields[3]))
    cell_w, cell_h = cells[0][0].size
    header, gap = 14, 4
    rows = (len(cells) + columns - 1) // columns
    grid = Image.new("L", (columns * (cell_w + gap) + gap, rows * (cell_h + header + gap) + gap), 80)
    draw, font = ImageDraw.Draw(grid), ImageFont.load_default()
    for k, (image, label) in enumerate(cells):
        x = gap + (k % columns) * (cell_w + gap)
        y = gap + (k // columns) * (cell_h + header + gap)
        draw.text((x + 2, y + 1), f"label {label}", fill=255, font=font)
        grid.paste(image, (x, y + header))
    path = Path(path)
    with atomic_file(path) as temp:
        grid.save(temp, format="PNG")
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m data_prep.pathfinder", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, required=True, help="32 (Pathfinder) or 128 (Path-X)")
    parser.add_argument("--difficulty", required=True, help=f"one of {', '.join(DIFFICULTIES)}")
    parser.add_argument("--n", type=int, required=True, help="number of images")
    parser.add_argument("--out", type=Path, required=True, help="output root (pathfinder<size>/<difficulty> below it)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    parser.add_argument("--preview", type=Path, help="also write a labelled 4x4 grid of samples to this PNG")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    try:
        start = time.perf_counter()
        root = generate(args.out, args.size, args.difficulty, args.n, args.seed, args.workers,
                        progress=not args.no_progress)
        seconds = time.perf_counter() - start
        if args.preview:
            write_preview(root, args.preview)
    except LRAError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"{root}: {args.n} images in {seconds:.1f} s ({args.n / seconds:.1f} images/s, {args.workers} workers)",
          file=sys.stderr)
    print(root)
    return root


if __name__ == "__main__":
    main()
