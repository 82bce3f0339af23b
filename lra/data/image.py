"""CIFAR-10 in grey (LRA Image): 32x32 pixels read row by row as 1024 tokens 0..255, 10 classes.

Sources, in this order: `path` if it exists (torchvision's python pickles `cifar-10-batches-py/`, or a snapshot of
the hub repository `uoft-cs/cifar10`, i.e. its parquet files), else the Hugging Face cache at `hf_cache` (filled by
`python -m data_prep.download cifar10`). Grey levels are computed as LRA's `tf.image.rgb_to_grayscale` did
(`lra.data.pixels.grey_like_lra`). Splits as LRA: train = the first 90% of the train set, val = its last 10%,
test = the test set (45k / 5k / 10k). Every token is real: there is no padding and the mask is all True.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from lra.data.base import LRADataModule
from lra.data.hf import check_snapshot, parquet_files, read_split
from lra.data.pixels import decode_png, grey_like_lra
from lra.errors import LRAError

REPO, CONFIG = "uoft-cs/cifar10", "plain_text"
DATASET = ("CIFAR-10", REPO, CONFIG, "cifar10")  # as named in messages, on the hub, and by data_prep.download
COLUMNS = ("img", "label")
PICKLES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
SIDE = 32
VAL_FRACTION = 0.1


def read_pickle(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """RGB images [N, 32, 32, 3] and labels of one CIFAR-10 python batch (a dict: b"data" [N, 3072], b"labels")."""
    try:
        with open(file, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError) as err:
        reason = f"{type(err).__name__}: {err}"
        raise LRAError(f"{file}: not a readable CIFAR-10 python batch ({reason}); unpack it again") from err
    if not isinstance(batch, dict):
        raise LRAError(f"{file}: holds a {type(batch).__name__}, expected the dict of a CIFAR-10 python batch")
    data, labels = (batch.get(key.encode(), batch.get(key)) for key in ("data", "labels"))
    if data is None or labels is None:
        raise LRAError(f"{file}: lacks the 'data' or 'labels' entry of a CIFAR-10 python batch")
    data, labels = np.asarray(data), np.asarray(labels)
    if labels.size and labels.dtype.kind not in "iu":
        raise LRAError(f"{file}: labels are {labels.dtype} (first {labels.flat[0].item()!r}), expected integers 0..9")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE or len(labels) != len(data):
        raise LRAError(
            f"{file}: data is {data.dtype} {data.shape} with {len(labels)} labels; expected uint8 [N, 3072], N labels"
        )
    # Stored channel-major: 1024 red, 1024 green, 1024 blue values per row.
    return data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1), labels.astype(np.int64)


class ImageDataModule(LRADataModule):
    """CIFAR-10 as LRA's Image task (see module docstring)."""

    name = "image"
    vocab_size = 256
    n_classes = 10

    def __init__(
        self,
        path: str,
        cache_dir: str,
        max_len: int,
        batch_size: int,
        num_workers: int = 0,
        hf_cache: str = "data/hf",
    ) -> None:
        super().__init__(path, cache_dir, max_len, batch_size, num_workers)
        self.hf_cache = Path(hf_cache).expanduser()
        self.loaded: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def layout(self) -> str:
        """`pickle` (cifar-10-batches-py), `snapshot` (parquet files under path) or `hub` (the HF cache)."""
        if not self.path.exists():
            return "hub"
        if any((self.path / name).exists() for names in PICKLES.values() for name in names):
            return "pickle"
        if parquet_files(self.path):
            return "snapshot"
        raise LRAError(
            f"CIFAR-10: {self.path} holds neither cifar-10-batches-py files (data_batch_1..5, test_batch) nor a "
            f"snapshot of {REPO}; fix task.path, or remove it to use the Hugging Face cache at {self.hf_cache}"
        )

    def source_files(self) -> list[Path]:
        layout = self.layout()
        if layout == "pickle":
            return [self.path / name for names in PICKLES.values() for name in names]
        return parquet_files(self.path) if layout == "snapshot" else []

    def check_source(self) -> None:
        if self.max_len != SIDE * SIDE:
            raise LRAError(f"task.max_len={self.max_len}, but CIFAR-10 images are {SIDE}x{SIDE} = {SIDE * SIDE} pixels")
        layout = self.layout()
        if layout == "pickle":
            missing = [f.name for f in self.source_files() if not f.is_file()]
            if missing:
                raise LRAError(f"CIFAR-10: {self.path} lacks {', '.join(missing)}; unpack cifar-10-python.tar.gz again")
        elif layout == "snapshot":
            check_snapshot(self.path, COLUMNS, REPO)

    def settings(self) -> dict:
        layout = self.layout()
        return {"max_len": self.max_len, "source": f"hub:{REPO}/{CONFIG}" if layout == "hub" else layout}

    def source_split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Grey pixels [N, 1024] and labels of the source's `train` or `test` split, read once per prepare_data."""
        if split not in self.loaded:
            if self.layout() == "pickle":
                parts = [read_pickle(self.path / name) for name in PICKLES[split]]
                rgb, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
                where = str(self.path / PICKLES[split][0])
            else:
                rgb, labels, where = self.read_table(split)
            bad = np.flatnonzero((labels < 0) | (labels >= self.n_classes))
            if bad.size:
                raise LRAError(f"{where}: row {bad[0]} has label {labels[bad[0]]}, expected 0..9")
            # A slice at a time: the float32 intermediates of all 50k images at once would take 0.6 GB.
            grey = np.concatenate([grey_like_lra(rgb[i : i + 4096]) for i in range(0, len(rgb), 4096)])
            self.loaded[split] = grey.reshape(len(rgb), -1), labels
        return self.loaded[split]

    def read_table(self, split: str) -> tuple[np.ndarray, np.ndarray, str]:
        table, where = read_split(DATASET, COLUMNS, split, self.path, self.hf_cache, self.layout() == "hub")
        # The `img` column is stored as {bytes, path}: decode the PNG bytes ourselves, once.
        images = table.column("img").to_pylist()
        rgb = np.empty((len(images), SIDE, SIDE, 3), dtype=np.uint8)
        for row, image in enumerate(images):
            data = image.get("bytes") if isinstance(image, dict) else None
            if not data and isinstance(image, dict) and image.get("path"):
                data = Path(image["path"]).read_bytes()
            if not data:
                raise LRAError(f"{where}: row {row} has no image bytes")
            pixels = decode_png(data, "RGB", f"{where} row {row}")
            if pixels.shape != (SIDE, SIDE, 3):
                raise LRAError(f"{where}: row {row} is a {pixels.shape[1]}x{pixels.shape[0]} image, expected 32x32")
            rgb[row] = pixels
        labels = table.column("label").to_pylist()
        if not all(isinstance(label, int) for label in labels):
            raise LRAError(f"{where}: the label column holds {table.schema.field('label').type}, expected integers")
        return rgb, np.array(labels, dtype=np.int64), where

    def read_split(self, split: str) -> dict[str, np.ndarray]:
        pixels, labels = self.source_split("test" if split == "test" else "train")
        if split != "test":
            n_val = int(round(VAL_FRACTION * len(labels)))
            rows = slice(len(labels) - n_val, None) if split == "val" else slice(0, len(labels) - n_val)
            pixels, labels = pixels[rows], labels[rows]
        if len(labels) == 0:
            raise LRAError(f"CIFAR-10: the {split} split is empty; the source holds too few images")
        return {
            "input_ids": np.ascontiguousarray(pixels),
            "length": np.full(len(labels), self.max_len, dtype=np.int32),
            "label": labels,
        }

    def prepare_data(self) -> None:
        try:
            super().prepare_data()
        finally:
            self.loaded.clear()
