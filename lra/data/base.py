"""What every LRA DataModule shares: tokenize once, cache as memory-mapped arrays, batch per the contract.

A task subclass says where its files are (`check_source`), how one split is read and tokenized (`read_split`),
and which settings change the tokenized result (`settings`); this class does caching, batching and masks.
Batches are `{"input_ids": [B, L] int64, "mask": [B, L] bool, "padded": bool, "label": [B] int64}` (+ `input_ids_2`,
`mask_2`, `padded_2` for dual tasks), always padded to the task's fixed `max_len`; `padded` says whether any row is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from lra.atomic import atomic_directory
from lra.data.sampling import EpochShuffle, EvalShard
from lra.errors import LRAError
from lra.lock import exclusive
from lra.signals import leave_stop_signals_to_main

SPLITS = ("train", "val", "test")
# Bump when the cache layout or a tokenizer changes, so stale caches are not reused.
CACHE_VERSION = 1
# In each cache folder: the lock that lets one job at a time build it (lra.lock).
LOCK = ".lock"
# A split's temporary folder while it is built (lra.atomic.temporary_name): `.<split>.tmp-<pid>-<random>`.
TEMPORARY = re.compile(r"^\.(?:train|val|test)\.tmp-(\d+)-[0-9a-f]+$")


def pad_to_length(sequences: Sequence[np.ndarray], max_len: int, dtype: np.dtype, pad_id: int = 0) -> np.ndarray:
    """Stack variable-length token arrays into [N, max_len], right-padded; longer sequences must be cut before."""
    out = np.full((len(sequences), max_len), pad_id, dtype=dtype)
    for row, seq in zip(out, sequences, strict=True):
        row[: len(seq)] = seq
    return out


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest integer type that holds every token id: caches stay small and page in fast."""
    return np.dtype(np.uint8 if vocab_size <= 256 else np.int16 if vocab_size <= 32767 else np.int32)


class ArrayDataset(Dataset):
    """Rows of equally long arrays; whole batches are gathered at once (`__getitems__`), not row by row."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        sizes = {len(a) for a in arrays.values()}
        assert len(sizes) == 1, f"arrays differ in length: { {k: len(a) for k, a in arrays.items()} }"
        self.arrays = arrays
        self.size = sizes.pop()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> dict[str, np.ndarray]:
        order = np.asarray(indices)
        return {key: array[order] for key, array in self.arrays.items()}


def write_manifest(folder: Path) -> None:
    """The `complete` marker, listing each array file's size: a cache damaged later (truncated, deleted) is named."""
    sizes = {p.name: p.stat().st_size for p in sorted(folder.glob("*.npy"))}
    (folder / "complete").write_text(json.dumps(sizes), encoding="utf-8")


def load_split(folder: Path, root: Path) -> dict[str, np.ndarray]:
    """The split's arrays, memory-mapped; a damaged cache is one line saying to delete it (the next run rebuilds)."""
    fix = f"delete {root} and run again to rebuild it"
    text = (folder / "complete").read_text(encoding="utf-8").strip()
    expected = json.loads(text) if text else {}  # an empty marker: a cache from before the manifest
    for name, size in expected.items():
        path = folder / name
        if not path.is_file():
            raise LRAError(f"the token cache {folder} is damaged ({name} is missing); {fix}")
        if path.stat().st_size != size:
            raise LRAError(
                f"the token cache {folder} is damaged ({name} has {path.stat().st_size} bytes, {size} written); {fix}"
            )
    try:
        arrays = {p.stem: np.load(p, mmap_mode="r") for p in sorted(folder.glob("*.npy"))}
    except (OSError, ValueError) as err:
        raise LRAError(f"the token cache {folder} is damaged ({err}); {fix}") from err
    missing = {"input_ids", "length", "label"} - set(arrays)
    if missing:
        raise LRAError(f"the token cache {folder} is damaged (no {', '.join(sorted(missing))} array); {fix}")
    return arrays


def remove_dead_temporaries(root: Path) -> None:
    """Remove what a killed build left (its split's temporary folder): called under the cache's lock, so no live
    build of this cache writes here but ours; a temporary of a live process of this machine is kept all the same."""
    for path in root.iterdir():
        match = TEMPORARY.match(path.name)
        if match is None or process_alive(int(match.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def interrupts_raise(what: str) -> Iterator[None]:
    """SIGTERM while `what` runs: an LRAError line (its temporaries removed on the way out) instead of a silent
    exit. Only the main thread can set handlers; elsewhere the signal keeps its handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame) -> None:
        raise LRAError(
            f"stopped by {signal.Signals(signum).name} while {what}; nothing partial was kept: run again to finish it"
        )

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def to_batch(rows: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Gathered rows -> the batch contract; masks come from the stored lengths (True = real token)."""
    batch = {"label": torch.from_numpy(rows["label"].astype(np.int64))}
    for suffix in ("", "_2"):
        if f"input_ids{suffix}" not in rows:
            continue
        ids = torch.from_numpy(rows[f"input_ids{suffix}"].astype(np.int64))
        lengths = torch.from_numpy(rows[f"length{suffix}"].astype(np.int64))
        batch[f"input_ids{suffix}"] = ids
        batch[f"mask{suffix}"] = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
        # Decided here, on the host, so that no training step reads the mask back from a GPU to learn it.
        batch[f"padded{suffix}"] = bool((lengths < ids.shape[1]).any())
    return batch


class LRADataModule(pl.LightningDataModule):
    """Base class of the task DataModules (see module docstring)."""

    name: str = "task"
    vocab_size: int
    n_classes: int

    def __init__(
        self,
        path: str,
        cache_dir: str,
        max_len: int,
        batch_size: int,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.path = Path(path).expanduser()
        self.cache_root = Path(cache_dir).expanduser()
        self.max_len = max_len
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = 0  # the training-order seed; lra.data.build.build_datamodule sets it to the run's seed
        self.datasets: dict[str, ArrayDataset] = {}

    # --- what a task defines -------------------------------------------------------------------------------
    def check_source(self) -> None:
        """Raise LRAError with the command that makes the data if it is missing."""
        raise NotImplementedError

    def source_files(self) -> list[Path]:
        """Files whose size and mtime key the cache (so edited data is re-tokenized)."""
        raise NotImplementedError

    def read_split(self, split: str) -> dict[str, np.ndarray]:
        """Read and tokenize one split: `input_ids` [N, max_len], `length` [N], `label` [N] (+ `_2` pair)."""
        raise NotImplementedError

    def write_split(self, split: str, directory: Path) -> None:
        """Write one split's arrays as `<key>.npy` into `directory` (a temporary folder, renamed into place after).

        The default holds the split in memory (`read_split`); a task too large for that fills memory-mapped
        files here instead (`numpy.lib.format.open_memmap`).
        """
        for key, array in self.read_split(split).items():
            np.save(directory / f"{key}.npy", array)

    def settings(self) -> dict:
        """Preprocessing settings that change the tokenized arrays."""
        return {"max_len": self.max_len}

    # --- caching -------------------------------------------------------------------------------------------
    def cache_key(self) -> str:
        # Resolved: `data/x`, `./data/x` and `/abs/data/x` are one source and share one cache.
        stamp = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in self.source_files()]
        blob = json.dumps([CACHE_VERSION, type(self).__name__, self.settings(), stamp], sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def cache_dir(self) -> Path:
        return self.cache_root / f"{self.name}-{self.cache_key()}"

    def prepare_data(self) -> None:
        """Build the missing splits of the cache. Jobs that share it take turns (lra.lock): the first builds, the
        others wait and find it built; each split is renamed into place whole, so no job reads a partial one."""
        self.check_source()
        root = self.cache_dir()
        if self.cached(root):
            return  # no lock: a complete cache may be read-only
        with ExitStack() as held:
            try:
                root.mkdir(parents=True, exist_ok=True)
                held.enter_context(exclusive(root / LOCK, f"waiting for another job to build the token cache {root}"))
            except OSError as err:
                raise LRAError(f"cannot write the token cache at {root}: {err.strerror}; set task.cache_dir") from err
            remove_dead_temporaries(root)
            for split in SPLITS:
                if (root / split / "complete").exists():
                    continue  # built by the job that held the lock before us
                try:
                    with interrupts_raise(f"building the token cache {root}"), atomic_directory(root / split) as tmp:
                        self.write_split(split, tmp)
                        write_manifest(tmp)
                except OSError as err:  # numpy's write errors may carry no errno or file name: say where
                    raise LRAError(
                        f"cannot write the token cache at {root / split}: {err.strerror or err}; free space there "
                        "or set task.cache_dir to a directory with room"
                    ) from err
                if not (root / split / "complete").exists():
                    raise LRAError(f"{root / split} is an incomplete token cache (no 'complete' file); delete it")

    def cached(self, root: Path) -> bool:
        return all((root / split / "complete").exists() for split in SPLITS)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        root = self.cache_dir()
        for split in SPLITS:
            folder = root / split
            if not (folder / "complete").exists():
                raise LRAError(f"no token cache at {folder}: call prepare_data() first")
            self.datasets[split] = ArrayDataset(load_split(folder, root))

    # --- loaders -------------------------------------------------------------------------------------------
    def loader(self, split: str, sampler: EpochShuffle | None = None) -> DataLoader:
        """The split's batches: in order, this rank's share of them, unless a (training) sampler is given."""
        dataset = self.datasets[split]
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EvalShard(len(dataset), *self.shard()) if sampler is None else sampler,
            collate_fn=to_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=leave_stop_signals_to_main if self.num_workers > 0 else None,
            pin_memory=torch.cuda.is_available(),
            # Its own generator, so building an iterator never draws from the global RNG that dropout uses.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def shard(self) -> tuple[int, int]:
        """(this process's rank, the number of processes): (0, 1) outside a Trainer."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        sampler = EpochShuffle(len(self.datasets["train"]), self.seed, *self.shard())
        if self.trainer is not None:
            # Resuming mid-epoch: the restored loop says how many batches of this epoch were already trained on.
            sampler.skip = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed * self.batch_size
        return self.loader("train", sampler)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")
