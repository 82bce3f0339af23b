"""IMDB reviews (LRA Text): byte-level sentiment classification, 2 classes.

Sources, in this order: `path` if it exists (a snapshot of the hub repository `stanfordnlp/imdb`, i.e. its parquet
files, or the original `aclImdb/{train,test}/{pos,neg}/*.txt`), else the Hugging Face cache at `hf_cache` (filled by
`python -m data_prep.download imdb`). Reviews are UTF-8 bytes, token = byte + 1, cut to `max_len` (1000 in the
released config, 4000 in the paper's text): truncation is by design, not an error. Validation is the test set, as
in LRA; `val_split=holdout` holds out a seeded `holdout_fraction` of train instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lra.data import bytes as byte_tokens
from lra.data.base import LRADataModule
from lra.data.hf import check_snapshot, parquet_files, read_split
from lra.errors import LRAError

REPO, CONFIG = "stanfordnlp/imdb", "plain_text"
DATASET = ("IMDB", REPO, CONFIG, "imdb")  # as named in messages, on the hub, and by data_prep.download
COLUMNS = ("text", "label")
ACL_LABELS = {"neg": 0, "pos": 1}  # the hub's ClassLabel order
VAL_SPLITS = ("test", "holdout")


def review_order(file: Path) -> tuple[int, str]:
    """aclImdb names files `<id>_<rating>.txt`: order by id so that runs read them the same way everywhere."""
    match = re.match(r"(\d+)_", file.name)
    return (int(match.group(1)) if match else -1, file.name)


class TextDataModule(LRADataModule):
    """IMDB as LRA's byte-level Text task (see module docstring)."""

    name = "text"
    vocab_size = byte_tokens.VOCAB_SIZE
    n_classes = 2

    def __init__(
        self,
        path: str,
        cache_dir: str,
        max_len: int,
        batch_size: int,
        num_workers: int = 0,
        hf_cache: str = "data/hf",
        val_split: str = "test",
        holdout_fraction: float = 0.1,
        split_seed: int = 0,
    ) -> None:
        super().__init__(path, cache_dir, max_len, batch_size, num_workers)
        if val_split not in VAL_SPLITS:
            raise LRAError(f"task.val_split must be one of {', '.join(VAL_SPLITS)}, got {val_split!r}")
        if val_split == "holdout" and not 0.0 < holdout_fraction < 1.0:
            raise LRAError(f"task.holdout_fraction must be between 0 and 1, got {holdout_fraction}")
        self.hf_cache = Path(hf_cache).expanduser()
        self.val_split = val_split
        self.holdout_fraction = holdout_fraction
        self.split_seed = split_seed
        self.loaded: dict[str, tuple[list[bytes], np.ndarray]] = {}

    # --- where the reviews are ---------------------------------------------------------------------------------
    def acl_root(self) -> Path | None:
        for root in (self.path, self.path / "aclImdb"):
            if (root / "train" / "pos").is_dir():
                return root
        return None

    def layout(self) -> str:
        """`hub` (the HF cache), `snapshot` (parquet files under path) or `aclimdb` (text files under path)."""
        if not self.path.exists():
            return "hub"
        if parquet_files(self.path):
            return "snapshot"
        if self.acl_root() is not None:
            return "aclimdb"
        raise LRAError(
            f"IMDB: {self.path} holds neither a snapshot of {REPO} (parquet files) nor aclImdb/{{train,test}}/"
            f"{{pos,neg}}/*.txt; fix task.path, or remove it to use the Hugging Face cache at {self.hf_cache}"
        )

    def acl_files(self, split: str) -> dict[str, list[Path]]:
        root = self.acl_root()
        return {name: sorted((root / split / name).glob("*.txt"), key=review_order) for name in ACL_LABELS}

    def source_files(self) -> list[Path]:
        layout = self.layout()
        if layout == "snapshot":
            return parquet_files(self.path)
        if layout == "aclimdb":
            return [f for split in ("train", "test") for files in self.acl_files(split).values() for f in files]
        return []  # the hub cache: keyed by the dataset's name (in settings)

    def check_source(self) -> None:
        layout = self.layout()
        if layout == "snapshot":
            check_snapshot(self.path, COLUMNS, REPO)
        elif layout == "aclimdb":
            root = self.acl_root()
            for split in ("train", "test"):
                for name, files in self.acl_files(split).items():
                    if not files:
                        raise LRAError(f"IMDB: {root / split / name} holds no *.txt reviews; unpack aclImdb again")
        # The hub cache is checked when a split is read: an existing token cache needs no HF cache.

    def settings(self) -> dict:
        holdout = {"holdout_fraction": self.holdout_fraction, "split_seed": self.split_seed}
        return {
            "max_len": self.max_len,
            "source": f"hub:{REPO}/{CONFIG}" if self.layout() == "hub" else self.layout(),
            "val_split": self.val_split,
            **(holdout if self.val_split == "holdout" else {}),
        }

    # --- reading -----------------------------------------------------------------------------------------------
    def source_split(self, split: str) -> tuple[list[bytes], np.ndarray]:
        """Reviews (bytes) and labels of the source's `train` or `test` split, read once per prepare_data."""
        if split not in self.loaded:
            layout = self.layout()
            if layout == "aclimdb":
                self.loaded[split] = self.read_aclimdb(split)
            else:
                self.loaded[split] = self.read_table(split, layout)
        return self.loaded[split]

    def read_table(self, split: str, layout: str) -> tuple[list[bytes], np.ndarray]:
        table, where = read_split(DATASET, COLUMNS, split, self.path, self.hf_cache, layout == "hub")
        texts = table.column("text").to_pylist()
        if None in texts:
            raise LRAError(f"{where}: row {texts.index(None)} has no text")
        return [t.encode("utf-8") for t in texts], self.check_labels(table.column("label").to_pylist(), where)

    def read_aclimdb(self, split: str) -> tuple[list[bytes], np.ndarray]:
        texts, labels = [], []
        for name, files in self.acl_files(split).items():
            for file in files:
                texts.append(file.read_bytes())  # bytes as stored: the tokenizer is byte-level
            labels += [ACL_LABELS[name]] * len(files)
        return texts, np.array(labels, dtype=np.int64)

    @staticmethod
    def check_labels(labels: list, where: str) -> np.ndarray:
        for row, label in enumerate(labels):
            if not isinstance(label, int) or label not in (0, 1):
                raise LRAError(f"{where}: row {row} has label {label!r}, expected 0 (neg) or 1 (pos)")
        return np.array(labels, dtype=np.int64)

    def split_rows(self, split: str) -> tuple[str, np.ndarray | None]:
        """Which source split a task split comes from, and which of its rows (None = all)."""
        if self.val_split == "test" or split == "test":
            return ("test" if split == "val" else split), None
        n = len(self.source_split("train")[1])
        order = np.random.default_rng(self.split_seed).permutation(n)
        n_holdout = int(round(self.holdout_fraction * n))
        if not 0 < n_holdout < n:
            raise LRAError(f"task.holdout_fraction={self.holdout_fraction} leaves no train or val rows of {n}")
        return "train", np.sort(order[:n_holdout] if split == "val" else order[n_holdout:])

    def read_split(self, split: str) -> dict[str, np.ndarray]:
        source, rows = self.split_rows(split)
        texts, labels = self.source_split(source)
        if rows is not None:
            texts, labels = [texts[i] for i in rows], labels[rows]
        ids, lengths = byte_tokens.encode(texts, self.max_len)
        return {"input_ids": ids, "length": lengths, "label": labels}

    def prepare_data(self) -> None:
        try:
            super().prepare_data()
        finally:
            self.loaded.clear()  # tokenized and cached: the raw reviews are no longer needed
