"""How long each task's one-off preparation (read, tokenize, cache) takes, for the table in docs/data.md.

Real LRA data cannot be fetched everywhere, so this writes stand-ins in the exact source formats at a realistic
scale (the tests' format writers, with real-length texts), times the DataModule's `prepare_data`, and extrapolates
linearly to the real split sizes where it prepared fewer rows. Pathfinder needs generated images:

    python -m data_prep.pathfinder --size 32 --difficulty curv_contour_length_14 --n 4000 --out /tmp/pf
    python -m lra.bench.prep_time --work /tmp/prep --pathfinder /tmp/pf/pathfinder32

The stand-ins are written by the tests' own format writers (tests/task_fixtures.py), so this runs from a checkout
of the repository, not from an installed package.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_prep import listops as listops_generator
from lra.data.image import ImageDataModule
from lra.data.listops import ListOpsDataModule
from lra.data.pathfinder import PathfinderDataModule
from lra.data.retrieval import RetrievalDataModule
from lra.data.text import TextDataModule
from tests.task_fixtures import AAN_FILES, CIFAR_README, IMDB_README, cifar_images, png_bytes, words

# Real sizes (docs/reference.md#tasks-files-and-tokens): rows per task, all splits together.
REAL_ROWS = {"listops": 100_000, "text": 50_000, "retrieval": 182_613, "image": 60_000, "pathfinder": 199_999}


def timed(datamodule) -> float:
    start = time.perf_counter()
    datamodule.prepare_data()
    return time.perf_counter() - start


def bench_listops(work: Path) -> dict:
    out = work / "listops-1000"
    start = time.perf_counter()
    listops_generator.main(["--out", str(out), "--train", "96000", "--val", "2000", "--test", "2000", "--no-progress"])
    generated = time.perf_counter() - start
    dm = ListOpsDataModule(str(out), str(work / "cache"), max_len=2000, batch_size=32)
    return {"rows": 100_000, "generate_s": generated, "prepare_s": timed(dm)}


def bench_text(work: Path, n: int) -> dict:
    """IMDB reviews average about 1,300 bytes (230 words): same length here, `n` per split."""
    rng = np.random.default_rng(0)
    folder = work / "imdb" / "plain_text"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test", "unsupervised"):
        count = n if split != "unsupervised" else 8
        texts = [words(rng, int(rng.integers(40, 420))) for _ in range(count)]
        labels = [i % 2 for i in range(count)] if split != "unsupervised" else [-1] * count
        table = pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(labels, pa.int64())})
        pq.write_table(table, folder / f"{split}-00000-of-00001.parquet")
    (work / "imdb" / "README.md").write_text(IMDB_README)
    dm = TextDataModule(str(work / "imdb"), str(work / "cache"), 1000, 32, hf_cache=str(work / "hf"))
    return {"rows": 2 * n, "prepare_s": timed(dm)}


def bench_retrieval(work: Path, n: int) -> dict:
    """AAN texts are long (most over the 4,000-token cut): about 6,000-byte bytes-literals, `n` pairs per split."""
    rng = np.random.default_rng(1)
    folder = work / "tsv_data"
    folder.mkdir(parents=True, exist_ok=True)
    for split, name in AAN_FILES.items():
        count = n if split == "train" else max(n // 8, 8)
        with open(folder / name, "w", encoding="utf-8") as f:
            for i in range(count):
                a, b = (repr(words(rng, int(rng.integers(400, 1600))).encode()) for _ in range(2))
                f.write(f"{i % 2}\tP{i}-1\tP{i}-2\t{a}\t{b}\n")
        n_rows = n + 2 * max(n // 8, 8)
    dm = RetrievalDataModule(str(folder), str(work / "cache"), 4000, 32)
    return {"rows": n_rows, "prepare_s": timed(dm)}


def bench_image(work: Path, n_train: int) -> dict:
    folder = work / "cifar" / "plain_text"
    folder.mkdir(parents=True, exist_ok=True)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for split, count in (("train", n_train), ("test", n_train // 5)):
        images, labels = cifar_images(count, seed=len(split))
        imgs = [{"bytes": png_bytes(image), "path": None} for image in images]
        table = pa.table({"img": pa.array(imgs, image_type), "label": pa.array(labels, pa.int64())})
        pq.write_table(table, folder / f"{split}-00000-of-00001.parquet")
    (work / "cifar" / "README.md").write_text(CIFAR_README)
    dm = ImageDataModule(str(work / "cifar"), str(work / "cache"), 1024, 256, hf_cache=str(work / "hf"))
    return {"rows": n_train + n_train // 5, "prepare_s": timed(dm)}


def bench_pathfinder(root: Path, work: Path) -> dict:
    side = int(root.name.removeprefix("pathfinder"))
    difficulty = next(p.parent.name for p in root.glob("*/metadata"))
    dm = PathfinderDataModule(str(root), str(work / "cache"), side * side, 32, difficulty=difficulty)
    return {"rows": len(dm.read_metadata()[1]), "side": side, "prepare_s": timed(dm)}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lra.bench.prep_time", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="scratch folder for the stand-in files and caches")
    parser.add_argument("--pathfinder", type=Path, nargs="*", default=[], help="generated pathfinder<side> roots")
    parser.add_argument("--scale", type=float, default=0.2, help="fraction of the real Text/Retrieval/Image sizes")
    args = parser.parse_args()
    results = {
        "listops": bench_listops(args.work),
        "text": bench_text(args.work, int(25_000 * args.scale)),
        "retrieval": bench_retrieval(args.work, int(147_086 * args.scale)),
        "image": bench_image(args.work, int(50_000 * args.scale)),
    }
    for root in args.pathfinder:
        results[root.name] = bench_pathfinder(root, args.work)
    print("| task | rows prepared | seconds | rows/s | estimate at the real size |")
    print("|---|---|---|---|---|")
    for task, r in results.items():
        rate = r["rows"] / r["prepare_s"]
        real = REAL_ROWS.get(task, REAL_ROWS["pathfinder"])
        print(f"| {task} | {r['rows']} | {r['prepare_s']:.1f} | {rate:.0f} | {real / rate / 60:.1f} min |")
    if "generate_s" in results["listops"]:
        print(f"ListOps generation (96k/2k/2k): {results['listops']['generate_s']:.1f} s")


if __name__ == "__main__":
    main()
