"""Pathfinder and Path-X (LRA): are the two dots joined by one path? Grey pixels as tokens, 2 classes.

Reads the LRA release layout `<path>/<difficulty>/{imgs/<b>/sample_<i>.png, metadata/<b>.npy}` (path =
`pathfinder32` for Pathfinder, `pathfinder128` for Path-X). The metadata files are plain text despite `.npy`: one
line per image, space-separated, field 0 = sub-directory (e.g. `imgs/0`), 1 = file name, 3 = label. All images of
a difficulty are split 80/10/10 by a seeded permutation (`split_seed`); empty images (the release has one
zero-byte file; all-zero images too) are skipped, as LRA did. The PNGs are decoded once, in parallel processes,
straight into the memory-mapped uint8 cache; training never touches a PNG. The image side is sqrt(`max_len`).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from lra.data.base import LRADataModule
from lra.data.pixels import decode_grey_pngs
from lra.errors import LRAError

DIFFICULTIES = ("curv_baseline", "curv_contour_length_9", "curv_contour_length_14")
FRACTIONS = {"train": 0.8, "val": 0.1}  # test = the rest
ROWS_PER_COPY = 8192


def metadata_order(file: Path) -> tuple[int, str]:
    """Metadata files are numbered (`0.npy` .. `199.npy`): read them in numeric order."""
    return (int(file.stem), file.name) if re.fullmatch(r"\d+", file.stem) else (-1, file.name)


class PathfinderDataModule(LRADataModule):
    """Pathfinder (pathfinder32) and Path-X (pathfinder128) in the LRA release layout (see module docstring)."""

    name = "pathfinder"
    vocab_size = 256
    n_classes = 2

    def __init__(
        self,
        path: str,
        cache_dir: str,
        max_len: int,
        batch_size: int,
        num_workers: int = 0,
        difficulty: str = "curv_contour_length_14",
        split_seed: int = 0,
        decode_workers: int | None = None,
    ) -> None:
        super().__init__(path, cache_dir, max_len, batch_size, num_workers)
        self.difficulty = difficulty
        self.split_seed = split_seed
        self.decode_workers = decode_workers
        self.side = math.isqrt(max_len)
        self.name = f"pathfinder{self.side}"  # the cache folder name: Pathfinder and Path-X side by side
        self.samples: tuple[list[str], np.ndarray, list[str]] | None = None

    @property
    def root(self) -> Path:
        return self.path / self.difficulty

    def metadata_files(self) -> list[Path]:
        return sorted((self.root / "metadata").glob("*.npy"), key=metadata_order)

    def source_files(self) -> list[Path]:
        # The metadata, not the 200k PNGs: stat-ing those would cost seconds at every start.
        return self.metadata_files()

    def check_source(self) -> None:
        if self.side * self.side != self.max_len:
            raise LRAError(f"task.max_len={self.max_len} is not a square image (1024 = 32x32, 16384 = 128x128)")
        if not self.metadata_files():
            found = sorted(p.parent.name for p in self.path.glob("*/metadata")) if self.path.is_dir() else []
            there = f" (difficulties there: {', '.join(found)})" if found else ""
            raise LRAError(
                f"Pathfinder not found: no {self.root}/metadata/*.npy{there}; set task.difficulty to one of "
                f"{', '.join(DIFFICULTIES)}, unpack the LRA release (`python -m data_prep.download lra --out "
                f"{self.path.parent}`) or generate it with data_prep.pathfinder"
            )

    def settings(self) -> dict:
        return {"max_len": self.max_len, "difficulty": self.difficulty, "split_seed": self.split_seed, **FRACTIONS}

    # --- metadata and splits -------------------------------------------------------------------------------
    def read_metadata(self) -> tuple[list[str], np.ndarray, list[str]]:
        """Image paths, labels and `metadata-file:line` of every image of the difficulty, in file order."""
        if self.samples is None:
            paths, labels, wheres = [], [], []
            for meta in self.metadata_files():
                try:
                    lines = meta.read_text(encoding="utf-8").splitlines()
                except UnicodeDecodeError:
                    raise LRAError(f"{meta}: not text; expected metadata lines `dir file _ label`") from None
                for lineno, line in enumerate(lines, start=1):
                    fields = line.split()
                    if not fields:
                        continue
                    where = f"{meta}:{lineno}"
                    if len(fields) < 4:
                        raise LRAError(
                            f"{where}: expected at least 4 space-separated fields (dir file _ label), got {len(fields)}"
                        )
                    try:
                        label = int(fields[3])
                    except ValueError:
                        raise LRAError(f"{where}: label {fields[3]!r} is not an integer") from None
                    if label not in (0, 1):
                        raise LRAError(f"{where}: label {label} is not 0 or 1")
                    paths.append(os.path.join(self.root, fields[0], fields[1]))
                    labels.append(label)
                    wheres.append(where)
            if not paths:
                raise LRAError(f"{self.root / 'metadata'}: the metadata files list no images")
            self.samples = paths, np.array(labels, dtype=np.int64), wheres
        return self.samples

    def split_rows(self, split: str) -> np.ndarray:
        """Rows of the metadata in `split`: a seeded permutation cut 80/10/10, each part sorted (file order)."""
        n = len(self.read_metadata()[1])
        order = np.random.default_rng(self.split_seed).permutation(n)
        n_train, n_val = int(FRACTIONS["train"] * n), int(FRACTIONS["val"] * n)
        parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
        return np.sort(parts[split])

    # --- decoding ------------------------------------------------------------------------------------------
    def write_split(self, split: str, directory: Path) -> None:
        """Decode the split's PNGs in parallel into a memory-mapped array, then drop the empty images."""
        paths, labels, wheres = self.read_metadata()
        rows = self.split_rows(split)
        if len(rows) == 0:
            raise LRAError(f"{self.root}: too few images ({len(labels)}) for an 80/10/10 split")
        decoded = directory / "decoding.npy.part"
        pixels = open_memmap(decoded, "w+", np.uint8, (len(rows), self.max_len))
        del pixels  # the decoders open it themselves
        empty = decode_grey_pngs(
            decoded, [paths[r] for r in rows], [wheres[r] for r in rows], self.side, self.decode_workers
        )
        keep = np.setdiff1d(np.arange(len(rows)), empty)
        if len(keep) == 0:
            raise LRAError(f"{self.root}: every image of the {split} split is empty")
        if empty:
            compact(decoded, directory / "input_ids.npy", keep)
            decoded.unlink()
        else:
            os.replace(decoded, directory / "input_ids.npy")
        np.save(directory / "length.npy", np.full(len(keep), self.max_len, dtype=np.int32))
        np.save(directory / "label.npy", labels[rows[keep]])


def compact(source: Path, target: Path, keep: np.ndarray) -> None:
    """Copy the rows `keep` of one .npy into a new one, a slice at a time (the arrays may exceed memory)."""
    rows = np.load(source, mmap_mode="r")
    out = open_memmap(target, "w+", rows.dtype, (len(keep), rows.shape[1]))
    for start in range(0, len(keep), ROWS_PER_COPY):
        out[start : start + ROWS_PER_COPY] = rows[keep[start : start + ROWS_PER_COPY]]
    out.flush()
