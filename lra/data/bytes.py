"""The byte-level tokenizer of LRA Text and Retrieval: token = byte + 1, 0 = padding (vocab 257).

This is what LRA's `ByteTextEncoder` produced. Sequences are cut, never rejected: at `max_len` 1000 most IMDB
reviews are truncated by design. The work is vectorised: all texts are joined into one byte buffer and each
row of the output is one gather from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PAD = 0
VOCAB_SIZE = 257
DTYPE = np.dtype(np.int16)  # 0..256 fits; half the cache of int32
ROWS_PER_GATHER = 2048  # bounds the [rows, max_len] index matrix of one gather


def encode(texts: Sequence[bytes], max_len: int, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Token ids [N, max_len] (right-padded with 0) and lengths [N] of byte strings, each cut to `max_len` bytes.

    `out` may be a preallocated (e.g. memory-mapped) [N, max_len] array to fill instead of a new one.
    """
    lengths = np.fromiter((min(len(t), max_len) for t in texts), dtype=np.int64, count=len(texts))
    ids = np.zeros((len(texts), max_len), dtype=DTYPE) if out is None else out
    if len(texts) == 0:
        return ids, lengths.astype(np.int32)
    # One spare byte at the end, so that the gather index 0 of padded positions is valid even when all are empty.
    buffer = np.frombuffer(b"".join(t[:max_len] for t in texts) + b"\0", dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    columns = np.arange(max_len)
    for first in range(0, len(texts), ROWS_PER_GATHER):
        rows = slice(first, first + ROWS_PER_GATHER)
        real = columns[None, :] < lengths[rows, None]
        index = np.where(real, starts[rows, None] + columns[None, :], 0)
        ids[rows] = np.where(real, buffer[index].astype(DTYPE) + 1, PAD)
    return ids, lengths.astype(np.int32)


def decode(ids: np.ndarray) -> bytes:
    """The bytes of one row of token ids (padding dropped): for tests and for looking at the data."""
    ids = np.asarray(ids)
    return (ids[ids != PAD] - 1).astype(np.uint8).tobytes()
