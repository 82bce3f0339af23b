"""Images to pixel tokens, shared by Image and Pathfinder: PNG decoding, LRA's grey conversion, parallel decoding.

Kept free of torch imports: decoding processes are spawned (lra.parallel) and import this module afresh.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from lra.errors import LRAError
from lra.parallel import parallel_map

# tf.image.rgb_to_grayscale's weights (ITU-R 601 luma, rounded as TensorFlow has them).
GREY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)
IMAGES_PER_TASK = 2000  # images one decoding process handles per task
PARALLEL_MIN = 4000  # below this many images, decoding in this process is faster than starting workers


def grey_like_lra(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB [..., 3] -> uint8 grey [...], bit for bit as `tf.image.rgb_to_grayscale` on uint8 images.

    TensorFlow converts to float32 in [0, 1] (x * (1/255)), takes the weighted sum, and converts back with
    `convert_image_dtype`, which scales by 255.5 and casts: a truncation, i.e. floor(255.5 * grey / 255).
    That is neither rounding nor truncating 0.2989R+0.5870G+0.1140B (white stays 255, mid-greys can land one
    level above the truncated value). LRA fed CIFAR-10 through exactly this, so this does the same in float32.
    """
    scaled = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    grey = scaled[..., 0] * GREY_WEIGHTS[0] + scaled[..., 1] * GREY_WEIGHTS[1] + scaled[..., 2] * GREY_WEIGHTS[2]
    return (grey * np.float32(255.5)).astype(np.uint8)


def decode_png(data: bytes, mode: str, name: str) -> np.ndarray:
    """Decode one encoded image into a uint8 array in `mode` ("L" or "RGB"); a bad file is one LRAError line."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return np.asarray(image if image.mode == mode else image.convert(mode))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LRAError(f"{name}: not a readable image ({reason}); restore the file from the source") from None


def decode_grey_rows(target: str, start: int, paths: list[str], wheres: list[str], side: int) -> list[int]:
    """Decode grey PNGs into rows `start...` of the .npy file `target` (opened memory-mapped, so many processes
    write one array); returns the rows whose image is empty (a zero-byte file or all-zero pixels)."""
    out = np.load(target, mmap_mode="r+")
    empty = []
    for offset, (path, where) in enumerate(zip(paths, wheres, strict=True)):
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise LRAError(f"{where}: names image {path}, which does not exist") from None
        except OSError as err:
            raise LRAError(f"{where}: cannot read image {path}: {err.strerror}") from None
        pixels = decode_png(data, "L", path) if data else None
        if pixels is not None and pixels.shape != (side, side):
            raise LRAError(
                f"{path}: image is {pixels.shape[1]}x{pixels.shape[0]}, expected {side}x{side} "
                f"(task.max_len={side * side} pixels)"
            )
        if pixels is None or not pixels.any():
            empty.append(start + offset)
            continue
        out[start + offset] = pixels.reshape(-1)
    out.flush()
    return empty


def decode_grey_pngs(target: Path, paths: list[str], wheres: list[str], side: int, workers: int | None) -> list[int]:
    """Fill the [len(paths), side*side] uint8 .npy at `target` from PNG files, across `workers` processes
    (default: one per CPU); returns the sorted rows of empty images. `wheres` name each image's metadata line."""
    n = len(paths)
    small = n < PARALLEL_MIN
    workers = 1 if small else workers or os.cpu_count() or 1
    starts = range(0, n, IMAGES_PER_TASK)
    tasks = ((str(target), s, paths[s : s + IMAGES_PER_TASK], wheres[s : s + IMAGES_PER_TASK], side) for s in starts)
    empty = []
    with tqdm(total=n, desc=f"decoding {n} PNGs", unit="img", disable=small) as bar:
        for start, rows in zip(starts, parallel_map(decode_grey_rows, tasks, workers), strict=True):
            empty += rows
            bar.update(min(IMAGES_PER_TASK, n - start))
    return sorted(empty)
