"""The Text, Retrieval, Image, Pathfinder and Path-X DataModules and the download tool, on tiny files in the exact
formats of the real sources (written by tests/task_fixtures.py)."""

from __future__ import annotations

import http.server
import io
import os
import pickle
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from data_prep import download
from lra.data import bytes as byte_tokens
from lra.data import pixels
from lra.data.build import build_datamodule
from lra.data.image import ImageDataModule
from lra.data.pathfinder import PathfinderDataModule
from lra.data.pixels import grey_like_lra
from lra.data.retrieval import RetrievalDataModule
from lra.data.text import TextDataModule
from lra.errors import LRAError
from lra.run.config import compose_train
from tests.task_fixtures import (
    AAN_FILES,
    read_pathfinder,
    write_aan,
    write_aclimdb,
    write_cifar_pickles,
    write_cifar_snapshot,
    write_imdb_snapshot,
    write_pathfinder,
)


def prepared(dm):
    dm.prepare_data()
    dm.setup()
    return dm


def whole(dm, split: str) -> dict[str, torch.Tensor]:
    """One batch holding the whole split, in order."""
    dm.batch_size = len(dm.datasets[split])
    return next(iter(dm.loader(split)))


def tokens(text: bytes, max_len: int) -> list[int]:
    return [b + 1 for b in text[:max_len]]


def assert_not_cached(dm, split: str) -> None:
    assert not (dm.cache_dir() / split).exists()
    assert not list(dm.cache_root.glob(f"*/.{split}.tmp-*")), "no temporary folder is left behind"


# --- configs ---------------------------------------------------------------------------------------------------
# Released (docs/reference.md): len, bs, steps, lr, schedule, warmup, wd, (layers, d, heads, ff), pool, pos, clip
RECIPES = {
    "text": (1000, 32, 20000, 0.05, "rsqrt", 8000, 0.1, (4, 256, 4, 1024), "cls", "sinusoidal", None),
    "retrieval": (4000, 32, 5000, 0.05, "rsqrt", 8000, 0.1, (4, 128, 4, 512), "cls", "sinusoidal", None),
    "image": (1024, 256, 35000, 5e-4, "cosine", 175, 0.0, (1, 128, 8, 128), "cls", "learned", None),
    "pathfinder": (1024, 512, 62400, 1e-3, "cosine", 312, 0.0, (4, 32, 4, 32), "mean", "sinusoidal", None),
    "pathx": (16384, 64, 500000, 1e-3, "cosine", 2500, 0.0, (1, 32, 2, 32), "mean", "learned", 1.0),
}


@pytest.mark.parametrize("task", sorted(RECIPES))
def test_task_configs_carry_the_released_recipes(task, monkeypatch):
    monkeypatch.setenv("LRA_DATA", "/lra")
    cfg = compose_train([f"task={task}", "model=transformer"])
    length, batch, steps, lr, schedule, warmup, wd, sizes, pool, pos, clip = RECIPES[task]
    assert (cfg.task.max_len, cfg.task.batch_size, cfg.trainer.max_steps) == (length, batch, steps)
    optim = cfg.optim
    assert (optim.lr, optim.schedule, optim.warmup_steps, optim.weight_decay) == (lr, schedule, warmup, wd)
    m = cfg.model
    assert ((m.n_layers, m.d_model, m.n_heads, m.d_ff), m.pool, m.pos) == (sizes, pool, pos)
    assert cfg.trainer.gradient_clip_val == clip
    assert cfg.task.name == task and str(cfg.task.path).startswith("/lra/")
    dm = build_datamodule(cfg.task, seed=0)  # every key that is not task metadata is a DataModule argument
    assert (dm.vocab_size, dm.n_classes) == (cfg.task.vocab_size, cfg.task.n_classes)


def test_listops_recipe_has_no_clipping_and_text_length_is_one_key():
    assert compose_train(["task=listops"]).trainer.gradient_clip_val is None
    assert compose_train(["task=text", "task.max_len=4000"]).task.max_len == 4000
    assert compose_train(["task=retrieval"]).task.interaction == "paper" and compose_train(["task=retrieval"]).task.dual


# --- bytes -----------------------------------------------------------------------------------------------------
def test_byte_tokens_are_byte_plus_one_cut_and_padded():
    texts = ["héllo".encode(), b"", b"\x00\xff" * 10]
    ids, lengths = byte_tokens.encode(texts, 8)
    assert ids.dtype == np.int16 and ids.shape == (3, 8)
    assert ids[0].tolist() == tokens(texts[0], 8) + [0, 0]
    assert ids[1].tolist() == [0] * 8
    assert ids[2].tolist() == [1, 256] * 4 and lengths.tolist() == [6, 0, 8]
    assert byte_tokens.decode(ids[0]) == texts[0]


# --- Text ------------------------------------------------------------------------------------------------------
def text_dm(path: Path, tmp_path: Path, max_len: int = 32, **options) -> TextDataModule:
    return TextDataModule(str(path), str(tmp_path / "cache"), max_len, 4, hf_cache=str(tmp_path / "hf"), **options)


@pytest.mark.parametrize("readme", [True, False])
def test_text_from_a_hub_snapshot(tmp_path, readme):
    rows = write_imdb_snapshot(tmp_path / "imdb", readme=readme)
    dm = prepared(text_dm(tmp_path / "imdb", tmp_path))
    assert {s: len(d) for s, d in dm.datasets.items()} == {"train": 24, "val": 12, "test": 12}
    val, test = whole(dm, "val"), whole(dm, "test")
    assert torch.equal(val["input_ids"], test["input_ids"]), "validation is the test set, as in LRA"
    texts, labels = rows["test"]
    for i, text in enumerate(texts):
        expected = tokens(text.encode("utf-8"), 32)
        assert test["input_ids"][i].tolist() == expected + [0] * (32 - len(expected))
        assert test["mask"][i].sum().item() == len(expected) == min(len(text.encode()), 32)
    assert test["label"].tolist() == labels
    assert any(len(t.encode()) > 32 for t in texts), "the fixture exercises truncation"


def test_text_from_aclimdb(tmp_path):
    rows = write_aclimdb(tmp_path / "acl")
    for path in (tmp_path / "acl", tmp_path / "acl" / "aclImdb"):  # the parent or aclImdb itself
        dm = prepared(text_dm(path, tmp_path, max_len=64))
        train = whole(dm, "train")
        assert len(dm.datasets["test"]) == 12
        assert train["label"].tolist() == rows["train"][1]  # neg (0) first, then pos (1), files by id
        for i, text in enumerate(rows["train"][0]):
            assert byte_tokens.decode(train["input_ids"][i].numpy()) == text.encode("utf-8")[:64]


def test_text_holdout_is_a_seeded_slice_of_train(tmp_path):
    write_imdb_snapshot(tmp_path / "imdb")
    dm = prepared(text_dm(tmp_path / "imdb", tmp_path, val_split="holdout", holdout_fraction=0.25, split_seed=3))
    assert {s: len(d) for s, d in dm.datasets.items()} == {"train": 18, "val": 6, "test": 12}
    full = prepared(text_dm(tmp_path / "imdb", tmp_path))
    every = {tuple(r) for r in whole(full, "train")["input_ids"].tolist()}
    train = {tuple(r) for r in whole(dm, "train")["input_ids"].tolist()}
    val = {tuple(r) for r in whole(dm, "val")["input_ids"].tolist()}
    assert train | val == every and not train & val
    other = prepared(text_dm(tmp_path / "imdb", tmp_path, val_split="holdout", holdout_fraction=0.25, split_seed=4))
    assert {tuple(r) for r in whole(other, "val")["input_ids"].tolist()} != val
    assert dm.cache_dir() not in (full.cache_dir(), other.cache_dir())


def test_text_missing_offline_says_how_to_get_it(tmp_path):
    dm = text_dm(tmp_path / "data" / "imdb", tmp_path / "data")
    with pytest.raises(LRAError, match=r"^IMDB not found: .*python -m data_prep.download imdb --out .*data`"):
        dm.prepare_data()
    with pytest.raises(LRAError, match="val_split must be one of test, holdout"):
        text_dm(tmp_path, tmp_path, val_split="dev")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LRAError, match="empty holds neither a snapshot .* nor aclImdb"):
        text_dm(tmp_path / "empty", tmp_path).prepare_data()


@pytest.mark.parametrize("damage", ["truncated", "no_label_column", "float_labels", "label_out_of_range"])
def test_text_bad_snapshot_is_named(tmp_path, damage):
    write_imdb_snapshot(tmp_path / "imdb")
    file = tmp_path / "imdb" / "plain_text" / "train-00000-of-00001.parquet"
    if damage == "truncated":
        data = file.read_bytes()
        file.write_bytes(data[: len(data) // 2])
        message = r"train-00000-of-00001.parquet: not a readable parquet file"
    elif damage == "no_label_column":
        pq.write_table(pa.table({"text": ["a", "b"], "stars": [1, 2]}), file)
        message = r"train-00000-of-00001.parquet: has columns \['text', 'stars'\], lacks \['label'\]"
    elif damage == "float_labels":
        pq.write_table(pa.table({"text": ["a", "b"], "label": [0.0, 0.5]}), file)
        message = r"train-00000-of-00001.parquet: column 'label' holds double, expected integers"
    else:
        pq.write_table(pa.table({"text": ["a", "b"], "label": [1, 7]}), file)
        message = r"imdb \(train\): row 1 has label 7, expected 0 \(neg\) or 1 \(pos\)"
    dm = text_dm(tmp_path / "imdb", tmp_path)
    with pytest.raises(LRAError, match=message):
        dm.prepare_data()
    assert_not_cached(dm, "train")


# --- Retrieval -------------------------------------------------------------------------------------------------
def retrieval_dm(path: Path, tmp_path: Path, max_len: int = 24, **options) -> RetrievalDataModule:
    return RetrievalDataModule(str(path), str(tmp_path / "cache"), max_len, 4, **options)


def test_retrieval_pairs_follow_the_dual_contract(tmp_path):
    rows = write_aan(tmp_path / "tsv_data")
    dm = prepared(retrieval_dm(tmp_path / "tsv_data", tmp_path))
    assert {s: len(d) for s, d in dm.datasets.items()} == {"train": 16, "val": 8, "test": 8}
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"input_ids", "mask", "padded", "input_ids_2", "mask_2", "padded_2", "label"}
    val = whole(dm, "val")
    for i, (label, text1, text2) in enumerate(rows["val"]):
        assert val["label"][i].item() == label  # also where the file says 1.0 / 0.0
        for key, text in (("input_ids", text1), ("input_ids_2", text2)):
            raw = text.encode()
            assert raw.startswith(b"b'"), "the release's bytes literal is tokenized as written, as LRA did"
            assert val[key][i, : min(len(raw), 24)].tolist() == tokens(raw, 24)
        assert val["mask_2"][i].sum().item() == min(len(text2.encode()), 24)


def test_retrieval_cuts_bytes_then_tokens(tmp_path):
    directory = tmp_path / "tsv_data"
    directory.mkdir()
    long = "x" * 50
    for name in AAN_FILES.values():
        (directory / name).write_text(f"1\ta\tb\t{long}\t{long[:5]}\n0.0\tc\td\tyy\t{long}\n")
    cut_by_bytes = whole(prepared(retrieval_dm(directory, tmp_path, max_len=32, max_bytes=20)), "train")
    assert cut_by_bytes["mask"].sum(1).tolist() == [20, 2] and cut_by_bytes["mask_2"].sum(1).tolist() == [5, 20]
    cut_by_tokens = whole(prepared(retrieval_dm(directory, tmp_path, max_len=32)), "train")
    assert cut_by_tokens["mask"].sum(1).tolist() == [32, 2] and cut_by_tokens["label"].tolist() == [1, 0]


@pytest.mark.parametrize(
    "line, message",
    [
        ("1\tid1\tid2\tonly one text", r"new_aan_pairs.train.tsv:3: expected 5 tab-separated columns .* got 4"),
        ("yes\tid1\tid2\ta\tb", r"new_aan_pairs.train.tsv:3: label 'yes' is not 0 or 1"),
        ("0.5\tid1\tid2\ta\tb", r"new_aan_pairs.train.tsv:3: label '0.5' is not 0 or 1"),
        ("1\tid1\tid2\ta\tb\textra", r"new_aan_pairs.train.tsv:3: expected 5 tab-separated columns .* got 6"),
    ],
)
def test_retrieval_malformed_rows_name_file_and_line(tmp_path, line, message):
    write_aan(tmp_path / "tsv_data")
    train = tmp_path / "tsv_data" / AAN_FILES["train"]
    rows = train.read_text().splitlines()
    rows.insert(2, line)
    train.write_text("\n".join(rows) + "\n")
    dm = retrieval_dm(tmp_path / "tsv_data", tmp_path)
    with pytest.raises(LRAError, match=message):
        dm.prepare_data()
    assert_not_cached(dm, "train")


def test_retrieval_truncated_file_and_missing_data(tmp_path):
    write_aan(tmp_path / "tsv_data")
    test_file = tmp_path / "tsv_data" / AAN_FILES["test"]
    data = test_file.read_bytes()
    cut = data.rindex(b"\t", 0, len(data) - 1) - 1  # mid-row: the last line loses its last column
    test_file.write_bytes(data[:cut])
    dm = retrieval_dm(tmp_path / "tsv_data", tmp_path)
    with pytest.raises(LRAError, match=r"new_aan_pairs.test.tsv:8: expected 5 tab-separated columns"):
        dm.prepare_data()
    assert_not_cached(dm, "test")
    assert (dm.cache_dir() / "train" / "complete").exists(), "the intact splits are cached"
    with pytest.raises(LRAError, match=r"Retrieval not found: .* lacks new_aan_pairs.train.tsv.*download lra"):
        retrieval_dm(tmp_path / "nowhere", tmp_path).prepare_data()


# --- Image -----------------------------------------------------------------------------------------------------
def test_grey_is_tensorflows_rgb_to_grayscale():
    """floor(255.5 * sum(w * x / 255)) in float32: not rounding, not truncating the weighted sum."""
    rgb = np.array([[0, 0, 0], [255, 255, 255], [100, 150, 200], [10, 10, 10], [0, 0, 50], [11, 0, 0]], np.uint8)
    assert grey_like_lra(rgb).tolist() == [0, 255, 141, 10, 5, 3]
    weighted = rgb @ np.array([0.2989, 0.5870, 0.1140])
    assert np.floor(weighted).astype(int).tolist() == [0, 254, 140, 9, 5, 3]  # truncation differs at 255, 141, 10
    assert np.round(weighted).astype(int).tolist() == [0, 255, 141, 10, 6, 3]  # rounding differs at 5


def image_dm(path: Path, tmp_path: Path, max_len: int = 1024) -> ImageDataModule:
    return ImageDataModule(str(path), str(tmp_path / "cache"), max_len, 4, hf_cache=str(tmp_path / "hf"))


@pytest.mark.parametrize("source", ["pickles", "snapshot"])
def test_image_pixels_splits_and_mask(tmp_path, source):
    if source == "pickles":
        rows = write_cifar_pickles(tmp_path / "cifar-10-batches-py")
        dm = prepared(image_dm(tmp_path / "cifar-10-batches-py", tmp_path))
    else:
        rows = write_cifar_snapshot(tmp_path / "cifar10")
        dm = prepared(image_dm(tmp_path / "cifar10", tmp_path))
    assert {s: len(d) for s, d in dm.datasets.items()} == {"train": 18, "val": 2, "test": 8}
    images, labels = rows["train"]
    grey = grey_like_lra(images).reshape(20, 1024)
    train, val, test = whole(dm, "train"), whole(dm, "val"), whole(dm, "test")
    assert train["input_ids"].numpy().tolist() == grey[:18].tolist() and train["label"].tolist() == labels[:18]
    assert val["input_ids"].numpy().tolist() == grey[18:].tolist(), "val = the last 10% of train"
    assert test["input_ids"].numpy().tolist() == grey_like_lra(rows["test"][0]).reshape(8, 1024).tolist()
    assert bool(test["mask"].all()), "pixels are never padding"
    assert dm.datasets["train"].arrays["input_ids"].dtype == np.uint8


def test_image_malformed_inputs_are_named(tmp_path):
    write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    data = batch.read_bytes()
    batch.write_bytes(data[: len(data) // 2])
    dm = image_dm(tmp_path / "cifar-10-batches-py", tmp_path)
    with pytest.raises(LRAError, match=r"data_batch_3: not a readable CIFAR-10 python batch"):
        dm.prepare_data()
    assert_not_cached(dm, "train")

    contents = pickle.loads(data)
    contents[b"labels"] = ["cat"] * len(contents[b"labels"])
    batch.write_bytes(pickle.dumps(contents))
    with pytest.raises(LRAError, match=r"data_batch_3: labels are <U3 \(first 'cat'\), expected integers"):
        image_dm(tmp_path / "cifar-10-batches-py", tmp_path).prepare_data()

    with pytest.raises(LRAError, match=r"task.max_len=256, but CIFAR-10 images are 32x32 = 1024"):
        image_dm(tmp_path / "cifar-10-batches-py", tmp_path, max_len=256).prepare_data()


def test_image_unreadable_png_in_a_snapshot(tmp_path):
    write_cifar_snapshot(tmp_path / "cifar10")
    file = tmp_path / "cifar10" / "plain_text" / "test-00000-of-00001.parquet"
    table = pq.read_table(file)
    images = table.column("img").to_pylist()
    images[3]["bytes"] = images[3]["bytes"][:40]  # cut inside the PNG
    pq.write_table(table.set_column(0, "img", pa.array(images, table.schema.field("img").type)), file)
    dm = image_dm(tmp_path / "cifar10", tmp_path)
    with pytest.raises(LRAError, match=r"cifar10 \(test\) row 3: not a readable image"):
        dm.prepare_data()
    assert_not_cached(dm, "test")


def test_image_missing_offline_says_how_to_get_it(tmp_path):
    with pytest.raises(LRAError, match=r"^CIFAR-10 not found: .*python -m data_prep.download cifar10 --out "):
        image_dm(tmp_path / "cifar-10-batches-py", tmp_path).prepare_data()


# --- Pathfinder / Path-X -----------------------------------------------------------------------------------------
def pathfinder_dm(path: Path, tmp_path: Path, max_len: int = 1024, **options) -> PathfinderDataModule:
    return PathfinderDataModule(str(path), str(tmp_path / "cache"), max_len, 4, **options)


def split_contents(dm: PathfinderDataModule) -> dict[str, set]:
    return {
        split: {(tuple(ids), label) for ids, label in zip(b["input_ids"].tolist(), b["label"].tolist(), strict=True)}
        for split in ("train", "val", "test")
        for b in [whole(dm, split)]
    }


def test_pathfinder_pixels_and_seeded_split(tmp_path):
    base = write_pathfinder(tmp_path / "pathfinder32", n_dirs=2, per_dir=15)
    images = read_pathfinder(base)
    dm = prepared(pathfinder_dm(tmp_path / "pathfinder32", tmp_path))
    assert {s: len(d) for s, d in dm.datasets.items()} == {"train": 24, "val": 3, "test": 3}
    parts = split_contents(dm)
    expected = {(tuple(pixels.reshape(-1).tolist()), label) for pixels, label in images.values()}
    assert parts["train"] | parts["val"] | parts["test"] == expected
    assert not parts["train"] & parts["val"] and not parts["val"] & parts["test"]
    assert bool(whole(dm, "val")["mask"].all())
    again = split_contents(prepared(pathfinder_dm(tmp_path / "pathfinder32", tmp_path)))
    assert again == parts
    other = split_contents(prepared(pathfinder_dm(tmp_path / "pathfinder32", tmp_path, split_seed=1)))
    assert other["val"] != parts["val"] and dm.cache_dir().name.startswith("pathfinder32-")


def test_pathfinder_difficulty_and_empty_images(tmp_path):
    write_pathfinder(tmp_path / "pf", n_dirs=2, per_dir=10)
    easy = write_pathfinder(tmp_path / "pf", difficulty="curv_baseline", n_dirs=1, per_dir=20)
    # As in the release: one zero-byte PNG (LRA skipped it); an all-black image is skipped too.
    (easy / "imgs" / "0" / "sample_3.png").write_bytes(b"")
    (easy / "imgs" / "0" / "sample_5.png").write_bytes(black_png())
    hard = prepared(pathfinder_dm(tmp_path / "pf", tmp_path))
    assert sum(len(d) for d in hard.datasets.values()) == 20
    dm = prepared(pathfinder_dm(tmp_path / "pf", tmp_path, difficulty="curv_baseline"))
    assert sum(len(d) for d in dm.datasets.values()) == 18
    assert all(bool(whole(dm, s)["input_ids"].any(1).all()) for s in ("train", "val", "test"))


def black_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_pathfinder_parallel_decoding_matches_serial(tmp_path, monkeypatch):
    write_pathfinder(tmp_path / "pf", n_dirs=2, per_dir=15)
    serial = split_contents(prepared(pathfinder_dm(tmp_path / "pf", tmp_path / "a", decode_workers=1)))
    monkeypatch.setattr(pixels, "PARALLEL_MIN", 0)
    monkeypatch.setattr(pixels, "IMAGES_PER_TASK", 4)
    parallel = split_contents(prepared(pathfinder_dm(tmp_path / "pf", tmp_path / "b", decode_workers=2)))
    assert parallel == serial


def test_pathx_reads_pathfinder128_at_its_length(tmp_path):
    write_pathfinder(tmp_path / "pathfinder128", side=16, n_dirs=1, per_dir=10)
    cfg = compose_train([f"data_dir={tmp_path}", "task=pathx", "task.max_len=256"])
    dm = prepared(build_datamodule(cfg.task, seed=0))
    assert dm.datasets["train"].arrays["input_ids"].shape == (8, 256)
    assert dm.cache_dir().name.startswith("pathfinder16-")
    with pytest.raises(LRAError, match=r"sample_0.png: image is 16x16, expected 32x32 \(task.max_len=1024"):
        pathfinder_dm(tmp_path / "pathfinder128", tmp_path).prepare_data()
    with pytest.raises(LRAError, match=r"task.max_len=1000 is not a square image"):
        pathfinder_dm(tmp_path / "pathfinder128", tmp_path, max_len=1000).prepare_data()


def damage_metadata(base: Path, line: str) -> None:
    meta = base / "metadata" / "1.npy"
    lines = meta.read_text().splitlines()
    lines[1] = line
    meta.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "damage, message",
    [
        ("imgs/1 sample_1.png 1", r"metadata/1.npy:2: expected at least 4 space-separated fields"),
        ("imgs/1 sample_1.png 1 maybe", r"metadata/1.npy:2: label 'maybe' is not an integer"),
        ("imgs/1 sample_1.png 1 2", r"metadata/1.npy:2: label 2 is not 0 or 1"),
        ("imgs/1 sample_99.png 1 0", r"metadata/1.npy:2: names image .*imgs/1/sample_99.png, which does not exist"),
        ("unreadable", r"imgs/1/sample_1.png: not a readable image"),
        ("truncated", r"imgs/1/sample_1.png: not a readable image"),
    ],
)
def test_pathfinder_malformed_inputs_are_named(tmp_path, damage, message):
    base = write_pathfinder(tmp_path / "pf", n_dirs=2, per_dir=5)
    png = base / "imgs" / "1" / "sample_1.png"
    if damage == "unreadable":
        png.write_bytes(b"not a png at all")
    elif damage == "truncated":
        png.write_bytes(png.read_bytes()[:60])
    else:
        damage_metadata(base, damage)
    dm = pathfinder_dm(tmp_path / "pf", tmp_path, split_seed=0)
    with pytest.raises(LRAError, match=message):
        dm.prepare_data()
    # The damaged image may sit in any split: those written before it are complete, its own must not exist.
    assert not [p for p in dm.cache_dir().glob("*") if p.is_dir() and not (p / "complete").exists()]
    split = next(s for s in ("train", "val", "test") if not (dm.cache_dir() / s).exists())
    assert_not_cached(dm, split)


def test_pathfinder_reads_what_the_generator_writes(tmp_path):
    """data_prep.pathfinder writes the release layout: the DataModule reads its images and labels as they are."""
    generator = pytest.importorskip("data_prep.pathfinder")
    base = generator.generate(tmp_path / "data", 32, "curv_baseline", 20, workers=1, progress=False, batch_size=10)
    images = read_pathfinder(base)
    cfg = compose_train([f"data_dir={tmp_path / 'data'}", "task=pathfinder", "task.difficulty=curv_baseline"])
    dm = prepared(build_datamodule(cfg.task, seed=0))
    parts = split_contents(dm)
    assert {s: len(p) for s, p in parts.items()} == {"train": 16, "val": 2, "test": 2}
    assert parts["train"] | parts["val"] | parts["test"] == {
        (tuple(pixels.reshape(-1).tolist()), label) for pixels, label in images.values()
    }


def test_pathfinder_missing_lists_what_is_there(tmp_path):
    write_pathfinder(tmp_path / "pf", difficulty="curv_baseline", n_dirs=1, per_dir=10)
    with pytest.raises(LRAError, match=r"Pathfinder not found: .*contour_length_14/metadata.*there: curv_baseline"):
        pathfinder_dm(tmp_path / "pf", tmp_path).prepare_data()


# --- download tool -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset", ["imdb", "cifar10"])
def test_download_hf_offline_is_one_line(tmp_path, dataset, capsys):
    assert os.environ["HF_DATASETS_OFFLINE"] == "1"
    with pytest.raises(SystemExit) as exit_info:
        download.main([dataset, "--out", str(tmp_path)])
    assert str(exit_info.value).startswith("error: offline (HF_DATASETS_OFFLINE or HF_HUB_OFFLINE is set)")
    assert "\n" not in str(exit_info.value) and not (tmp_path / "hf").exists()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_lra_unreachable_is_one_line(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/lra_release.gz"
    with pytest.raises(SystemExit) as exit_info:
        download.main(["lra", "--out", str(tmp_path), "--url", url, "--timeout", "5"])
    assert str(exit_info.value).startswith(f"error: cannot reach {url} (")
    assert not (tmp_path / "lra_release.gz").exists()


def release_archive() -> bytes:
    """A miniature lra_release.gz: a gzipped tar nesting lra_release/lra_release/<task folders> like the real one."""
    buffer = io.BytesIO()
    files = {
        "listops-1000/basic_train.tsv": b"Source\tTarget\n",
        "tsv_data/new_aan_pairs.train.tsv": b"1\ta\tb\tx\ty\n",
        "pathfinder32/curv_baseline/metadata/0.npy": b"imgs/0 sample_0.png 0 1\n",
    }
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"lra_release/lra_release/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class RangeServer(http.server.BaseHTTPRequestHandler):
    """Serves one blob with HTTP Range support, on the loopback interface; records the Range headers asked for."""

    blob = b""
    ranges: list = []

    def do_GET(self):  # noqa: N802 - the http.server API
        asked = self.headers.get("Range")
        type(self).ranges.append(asked)
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked else 0
        body = self.blob[start:]
        self.send_response(206 if asked else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_download_lra_resumes_unpacks_and_renames_into_place(tmp_path):
    blob = release_archive()
    RangeServer.blob, RangeServer.ranges = blob, []
    server = http.server.HTTPServer(("127.0.0.1", 0), RangeServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/lra_release.gz"
    out = tmp_path / "data"
    out.mkdir()
    (out / "lra_release.gz.part").write_bytes(blob[:100])  # an interrupted earlier download
    (out / "listops-1000").mkdir()  # already there: kept as is
    try:
        download.main(["lra", "--out", str(out), "--url", url])
    finally:
        server.shutdown()
    assert RangeServer.ranges == ["bytes=100-"]
    assert (out / "lra_release.gz").read_bytes() == blob and not (out / "lra_release.gz.part").exists()
    assert (out / "tsv_data" / "new_aan_pairs.train.tsv").read_bytes() == b"1\ta\tb\tx\ty\n"
    assert (out / "pathfinder32" / "curv_baseline" / "metadata" / "0.npy").is_file()
    assert not any((out / "listops-1000").iterdir()), "an existing folder is not replaced"
    assert sorted(p.name for p in out.iterdir()) == ["listops-1000", "lra_release.gz", "pathfinder32", "tsv_data"]


def test_download_lra_truncated_archive_is_one_line(tmp_path):
    (tmp_path / "lra_release.gz").write_bytes(release_archive()[:150])
    with pytest.raises(SystemExit, match=r"error: .*lra_release.gz: cannot unpack .*delete it and download again"):
        download.main(["lra", "--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lra_release.gz"], "nothing half-unpacked is left"
