"""AAN paper pairs (LRA Retrieval): does one paper cite the other? Byte-level, dual encoder, 2 classes.

Reads the LRA release's `tsv_data/new_aan_pairs.{train,eval,test}.tsv`: no header, tab-separated
`label id1 id2 text1 text2`, label 0/1 possibly written as a float (`1.0`). The texts are tokenized as the raw
bytes of their field, exactly as LRA did (in the release they are written as Python bytes literals, `b'...'`, and
LRA encoded those characters as they stand), cut to `max_bytes` (10,000) and then to `max_len` (4,000) tokens.
The splits are large (147k pairs, 2.4 GB of tokens), so they stream from the file into memory-mapped arrays.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from lra.data import bytes as byte_tokens
from lra.data.base import SPLITS, LRADataModule
from lra.errors import LRAError

FILES = {"train": "new_aan_pairs.train.tsv", "val": "new_aan_pairs.eval.tsv", "test": "new_aan_pairs.test.tsv"}
COLUMNS = "label, id1, id2, text1, text2"
ROWS_PER_CHUNK = 4096


def parse_label(field: bytes, where: str) -> int:
    """0 or 1, also when written as a float: LRA read this column as float32 and cast it to an integer."""
    try:
        value = float(field)
    except ValueError:
        value = None
    if value not in (0.0, 1.0):
        text = field.decode(errors="replace")
        raise LRAError(f"{where}: label {text!r} is not 0 or 1 (an integer, or a float like 1.0)")
    return int(value)


def read_pairs(path: Path, keep: int) -> Iterator[tuple[int, bytes, bytes]]:
    """(label, text1, text2) per non-empty line, texts cut to `keep` bytes; a bad line is named by file and line."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            fields = line.split(b"\t")
            if len(fields) != 5:
                raise LRAError(f"{path}:{lineno}: expected 5 tab-separated columns ({COLUMNS}), got {len(fields)}")
            yield parse_label(fields[0], f"{path}:{lineno}"), fields[3][:keep], fields[4][:keep]


def count_rows(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip(b"\r\n"))


class RetrievalDataModule(LRADataModule):
    """Reads `<path>/new_aan_pairs.{train,eval,test}.tsv` (path = the release's `tsv_data`)."""

    name = "retrieval"
    vocab_size = byte_tokens.VOCAB_SIZE
    n_classes = 2

    def __init__(
        self,
        path: str,
        cache_dir: str,
        max_len: int,
        batch_size: int,
        num_workers: int = 0,
        max_bytes: int = 10_000,
    ) -> None:
        super().__init__(path, cache_dir, max_len, batch_size, num_workers)
        self.max_bytes = max_bytes

    def split_file(self, split: str) -> Path:
        return self.path / FILES[split]

    def source_files(self) -> list[Path]:
        return [self.split_file(split) for split in SPLITS]

    def check_source(self) -> None:
        missing = [f.name for f in self.source_files() if not f.is_file()]
        if missing:
            raise LRAError(
                f"Retrieval not found: {self.path} lacks {', '.join(missing)}; unpack the LRA release "
                f"(`python -m data_prep.download lra --out {self.path.parent}` puts lra_release/tsv_data there)"
            )

    def settings(self) -> dict:
        return {"max_len": self.max_len, "max_bytes": self.max_bytes}

    def write_split(self, split: str, directory: Path) -> None:
        """Stream the file in chunks of rows into memory-mapped arrays: memory stays flat at any size."""
        path = self.split_file(split)
        n = count_rows(path)
        if n == 0:
            raise LRAError(f"{path}: no examples; expected tab-separated rows ({COLUMNS})")
        shape = (n, self.max_len)
        ids = [open_memmap(directory / f"input_ids{s}.npy", "w+", byte_tokens.DTYPE, shape) for s in ("", "_2")]
        lengths = np.zeros((2, n), dtype=np.int32)
        labels = np.zeros(n, dtype=np.int64)
        row = 0
        for chunk in chunked(read_pairs(path, min(self.max_bytes, self.max_len)), ROWS_PER_CHUNK):
            rows = slice(row, row + len(chunk))
            labels[rows] = [label for label, _, _ in chunk]
            for side in (0, 1):
                texts = [pair[side + 1] for pair in chunk]
                _, lengths[side, rows] = byte_tokens.encode(texts, self.max_len, ids[side][rows])
            row += len(chunk)
        for array in ids:
            array.flush()
        del ids
        np.save(directory / "length.npy", lengths[0])
        np.save(directory / "length_2.npy", lengths[1])
        np.save(directory / "label.npy", labels)


def chunked(items: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
