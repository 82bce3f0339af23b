"""The ListOps DataModule on tiny files in the exact LRA release format."""

from pathlib import Path

import numpy as np
import pytest
import torch

from lra.data.listops import PAD, UNK, VOCAB, ListOpsDataModule, tokenize
from lra.errors import LRAError
from tests.task_fixtures import write_listops


def datamodule(root: Path, max_len: int = 32, batch_size: int = 4) -> ListOpsDataModule:
    return ListOpsDataModule(path=str(root), cache_dir=str(root / "cache"), max_len=max_len, batch_size=batch_size)


def test_tokenize_as_lra():
    ids = tokenize("( ( ( [MAX 2 ) 9 ) ( ( [MIN 4 ) 7 ] ) ] )")
    words = ["[MAX", "2", "9", "[MIN", "4", "7", "X", "X"]
    assert ids == [VOCAB[w] for w in words]
    assert tokenize("[FOO 1 ]") == [UNK, VOCAB["1"], VOCAB["X"]]
    assert PAD not in VOCAB.values()


def test_batches_follow_the_contract(tmp_path):
    root = write_listops(tmp_path / "listops")
    dm = datamodule(root)
    dm.prepare_data()
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"input_ids", "mask", "padded", "label"}
    assert batch["input_ids"].shape == (4, 32) and batch["input_ids"].dtype == torch.int64
    assert batch["mask"].dtype == torch.bool and batch["label"].dtype == torch.int64
    # Real tokens are exactly the non-pad ones, and every row is padded to max_len.
    assert torch.equal(batch["mask"], batch["input_ids"] != PAD)
    first = (root / "basic_val.tsv").read_text().splitlines()[1].split("\t")
    val = next(iter(dm.val_dataloader()))
    expected = tokenize(first[0])
    assert val["input_ids"][0, : len(expected)].tolist() == expected
    assert val["label"][0].item() == int(first[1])
    assert len(dm.datasets["train"]) == 64 and len(dm.datasets["test"]) == 16


def test_cache_is_reused_and_keyed_by_settings(tmp_path):
    root = write_listops(tmp_path / "listops")
    dm = datamodule(root)
    dm.prepare_data()
    cache = dm.cache_dir()
    stamp = (cache / "train" / "input_ids.npy").stat().st_mtime_ns
    datamodule(root).prepare_data()
    assert (cache / "train" / "input_ids.npy").stat().st_mtime_ns == stamp
    assert datamodule(root, max_len=48).cache_dir() != cache
    assert np.load(cache / "train" / "input_ids.npy").dtype == np.uint8


def test_missing_directory_says_how_to_get_it(tmp_path):
    with pytest.raises(LRAError, match=r"python -m data_prep.listops --out .*LRA release"):
        datamodule(tmp_path / "nowhere").prepare_data()


@pytest.mark.parametrize(
    "line, message",
    [
        (None, r"basic_train.tsv:1: header is 'Source Target'"),
        ("( [MAX 1 2 ] )\t3\textra", r"basic_train.tsv:3: expected 2 tab-separated columns"),
        ("( [MAX 1 2 ] )\tseven", r"basic_train.tsv:3: label 'seven' is not an integer"),
        ("( [MAX 1 2 ] )\t12", r"basic_train.tsv:3: label 12 is outside 0..9"),
        ("( [MAX " + "1 " * 40 + "] )\t1", r"basic_train.tsv:3: 42 tokens exceed task.max_len=32"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, line, message):
    root = write_listops(tmp_path / "listops")
    train = root / "basic_train.tsv"
    rows = train.read_text().splitlines()
    if line is None:
        rows[0] = "Source Target"
    else:
        rows.insert(2, line)
    train.write_text("\n".join(rows) + "\n")
    dm = datamodule(root)
    with pytest.raises(LRAError, match=message):
        dm.prepare_data()
    assert not (dm.cache_dir() / "train").exists()
