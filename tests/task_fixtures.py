"""Tiny copies of every LRA task's source files, in the exact formats of the real ones (written by the tests), and
one fixture maker per task config (`MAKERS`, at the end): what the end-to-end tests run each conf/task/<t>.yaml on."""

from __future__ import annotations

import io
import pickle
import random
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


# --- ListOps ---------------------------------------------------------------------------------------------------
def listops_source(op: str, values: list) -> str:
    """Serialize one operator node the way the LRA generator does: a left-nested chain of pairs, then `]`."""
    text = f"( [{op} {values[0]} )"
    for value in values[1:]:
        text = f"( {text} {value} )"
    return f"( {text} ] )"


def write_listops(directory: Path, sizes=(("train", 64), ("val", 16), ("test", 16)), seed: int = 0) -> Path:
    """Tiny ListOps in the release format: one flat operator over 2..6 digits per row."""
    rng = random.Random(seed)
    evaluate = {"MIN": min, "MAX": max, "MED": lambda v: int(statistics.median(v)), "SM": lambda v: sum(v) % 10}
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in sizes:
        rows = ["Source\tTarget"]
        for _ in range(n):
            op = rng.choice(sorted(evaluate))
            values = [rng.randint(0, 9) for _ in range(rng.randint(2, 6))]
            rows.append(f"{listops_source(op, values)}\t{evaluate[op](values)}")
        (directory / f"basic_{split}.tsv").write_text("\n".join(rows) + "\n")
    return directory


# --- Text: IMDB ------------------------------------------------------------------------------------------------
WORDS = ["the", "film", "was", "great", "awful", "plot", "café", "naïve", "<br />", "!", "acting", "bored"]


def words(rng: np.random.Generator, n: int) -> str:
    return " ".join(rng.choice(WORDS, size=n))


IMDB_README = """---
dataset_info:
  config_name: plain_text
  features:
  - name: text
    dtype: string
  - name: label
    dtype:
      class_label:
        names:
          '0': neg
          '1': pos
configs:
- config_name: plain_text
  data_files:
  - split: train
    path: plain_text/train-*
  - split: test
    path: plain_text/test-*
  - split: unsupervised
    path: plain_text/unsupervised-*
  default: true
---
# IMDB (a test copy)
"""


def imdb_rows(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed)
    texts = [words(rng, int(rng.integers(3, 40))) for _ in range(n)]
    return texts, [i % 2 for i in range(n)]


def write_imdb_snapshot(directory: Path, n_train: int = 24, n_test: int = 12, readme: bool = True) -> dict:
    """The hub repository stanfordnlp/imdb as a snapshot: plain_text/<split>-00000-of-00001.parquet (+ README)."""
    rows = {"train": imdb_rows(n_train, 1), "test": imdb_rows(n_test, 2), "unsupervised": imdb_rows(4, 3)}
    rows["unsupervised"] = (rows["unsupervised"][0], [-1] * 4)
    (directory / "plain_text").mkdir(parents=True, exist_ok=True)
    for split, (texts, labels) in rows.items():
        table = pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(labels, pa.int64())})
        pq.write_table(table, directory / "plain_text" / f"{split}-00000-of-00001.parquet")
    if readme:
        (directory / "README.md").write_text(IMDB_README)
    return rows


def write_aclimdb(directory: Path, per_class: int = 6) -> dict:
    """The original aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt layout (plus the unused unsup/)."""
    rng = np.random.default_rng(4)
    rows = {}
    for split in ("train", "test"):
        texts, labels = [], []
        for label, name in enumerate(("neg", "pos")):
            folder = directory / "aclImdb" / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                text = words(rng, int(rng.integers(3, 30)))
                (folder / f"{i}_{7 if label else 2}.txt").write_text(text, encoding="utf-8")
                texts.append(text)
                labels.append(label)
        rows[split] = (texts, labels)
    (directory / "aclImdb" / "train" / "unsup").mkdir()
    (directory / "aclImdb" / "train" / "unsup" / "0_0.txt").write_text("not used")
    return rows


# --- Retrieval: AAN pairs --------------------------------------------------------------------------------------
AAN_FILES = {"train": "new_aan_pairs.train.tsv", "val": "new_aan_pairs.eval.tsv", "test": "new_aan_pairs.test.tsv"}


def aan_text(rng: np.random.Generator, n: int) -> str:
    """A paper's text as the release writes it: a Python bytes literal, escapes and all."""
    return repr(words(rng, n).encode("utf-8"))


def write_aan(directory: Path, sizes: dict | None = None) -> dict:
    """`new_aan_pairs.{train,eval,test}.tsv`: no header, `label id1 id2 text1 text2`, some labels as floats."""
    sizes = sizes or {"train": 16, "val": 8, "test": 8}
    rng = np.random.default_rng(5)
    directory.mkdir(parents=True, exist_ok=True)
    rows = {}
    for split, n in sizes.items():
        pairs, lines = [], []
        for i in range(n):
            label = i % 2
            written = f"{label}.0" if i % 3 == 0 else str(label)
            text1, text2 = aan_text(rng, int(rng.integers(2, 20))), aan_text(rng, int(rng.integers(2, 20)))
            pairs.append((label, text1, text2))
            lines.append(f"{written}\tP{i:02d}-{1000 + i}\tP{i:02d}-{2000 + i}\t{text1}\t{text2}\n")
        (directory / AAN_FILES[split]).write_text("".join(lines), encoding="utf-8")
        rows[split] = pairs
    return rows


# --- Image: CIFAR-10 -------------------------------------------------------------------------------------------
CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_images(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), [int(x) for x in rng.integers(0, 10, size=n)]


def write_cifar_pickles(directory: Path, per_batch: int = 4, n_test: int = 8) -> dict:
    """torchvision's cifar-10-batches-py: pickled dicts with bytes keys, data [N, 3072] stored channel-major."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = {"train": ([], []), "test": ([], [])}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        images, labels = cifar_images(n_test if name == "test_batch" else per_batch, seed=10 + b)
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1),
            b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
        }
        with open(directory / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        split = "test" if name == "test_batch" else "train"
        rows[split][0].append(images)
        rows[split][1].extend(labels)
    (directory / "batches.meta").write_bytes(pickle.dumps({b"label_names": [n.encode() for n in CIFAR_NAMES]}))
    return {split: (np.concatenate(images), labels) for split, (images, labels) in rows.items()}


CIFAR_README = (
    "---\ndataset_info:\n  config_name: plain_text\n  features:\n  - name: img\n    dtype: image\n"
    "  - name: label\n    dtype:\n      class_label:\n        names:\n"
    + "".join(f"          '{i}': {name}\n" for i, name in enumerate(CIFAR_NAMES))
    + "configs:\n- config_name: plain_text\n  data_files:\n  - split: train\n    path: plain_text/train-*\n"
    "  - split: test\n    path: plain_text/test-*\n  default: true\n---\n"
)


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_cifar_snapshot(directory: Path, n_train: int = 20, n_test: int = 8) -> dict:
    """The hub repository uoft-cs/cifar10: plain_text/<split>-00000-of-00001.parquet, img = {bytes: PNG, path}."""
    (directory / "plain_text").mkdir(parents=True, exist_ok=True)
    rows = {"train": cifar_images(n_train, 20), "test": cifar_images(n_test, 21)}
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for split, (images, labels) in rows.items():
        imgs = [{"bytes": png_bytes(image), "path": None} for image in images]
        table = pa.table({"img": pa.array(imgs, image_type), "label": pa.array(labels, pa.int64())})
        pq.write_table(table, directory / "plain_text" / f"{split}-00000-of-00001.parquet")
    (directory / "README.md").write_text(CIFAR_README)
    return rows


# --- Pathfinder / Path-X -----------------------------------------------------------------------------------------
def pathfinder_image(rng: np.random.Generator, side: int) -> np.ndarray:
    """Not a real Pathfinder drawing: a few bright strokes on black, enough to be non-empty grey PNG content."""
    image = np.zeros((side, side), dtype=np.uint8)
    for _ in range(3):
        row, col = rng.integers(0, side, size=2)
        image[row, max(col - 3, 0) : col + 3] = rng.integers(64, 256)
    return image


def write_pathfinder(
    root: Path, side: int = 32, difficulty: str = "curv_contour_length_14", n_dirs: int = 2, per_dir: int = 12
) -> Path:
    """`<root>/<difficulty>/{imgs/<b>/sample_<i>.png, metadata/<b>.npy}`; metadata lines `imgs/<b> sample_<i>.png
    <i> <label> ...` (plain text despite .npy) as the release writes them. Returns the difficulty folder."""
    rng = np.random.default_rng(side)
    base = root / difficulty
    (base / "metadata").mkdir(parents=True, exist_ok=True)
    for b in range(n_dirs):
        (base / "imgs" / str(b)).mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(per_dir):
            label = int(rng.integers(0, 2))
            Image.fromarray(pathfinder_image(rng, side)).save(base / "imgs" / str(b) / f"sample_{i}.png")
            lines.append(f"imgs/{b} sample_{i}.png {i} {label} 14 1.5 {side}\n")
        (base / "metadata" / f"{b}.npy").write_text("".join(lines))
    return base


def read_pathfinder(base: Path) -> dict[str, tuple[np.ndarray, int]]:
    """Every image of a written difficulty by its path: (pixels, label), read back independently of the loader."""
    out = {}
    for meta in sorted((base / "metadata").glob("*.npy")):
        for line in meta.read_text().splitlines():
            fields = line.split()
            path = base / fields[0] / fields[1]
            out[str(path)] = (np.asarray(Image.open(path)), int(fields[3]))
    return out


# --- one fixture maker per task config ---------------------------------------------------------------------------
# conf/task/<name>.yaml -> a function that writes that task's source files under a data_dir and returns the
# overrides its tiny run needs. The end-to-end tests run every task config; one without a maker here fails them.
def listops_data(root: Path) -> list[str]:
    write_listops(root / "listops-1000")
    return ["task.max_len=32"]


def text_data(root: Path) -> list[str]:
    write_imdb_snapshot(root / "imdb")
    return ["task.max_len=48"]


def retrieval_data(root: Path) -> list[str]:
    write_aan(root / "tsv_data")
    return ["task.max_len=48"]


def image_data(root: Path) -> list[str]:
    write_cifar_pickles(root / "cifar-10-batches-py", per_batch=2, n_test=4)
    return []  # 32x32 = 1024 tokens: the real length, still fast at this model size


def pathfinder_data(root: Path) -> list[str]:
    write_pathfinder(root / "pathfinder32", side=32, per_dir=8)
    return []


def pathx_data(root: Path) -> list[str]:
    # 16x16 stand-ins (task.max_len=256): 128x128 = 16384 tokens would not fit a CPU test.
    write_pathfinder(root / "pathfinder128", side=16, per_dir=8)
    return ["task.max_len=256"]


MAKERS: dict[str, Callable[[Path], list[str]]] = {
    "listops": listops_data,
    "text": text_data,
    "retrieval": retrieval_data,
    "image": image_data,
    "pathfinder": pathfinder_data,
    "pathx": pathx_data,
}
