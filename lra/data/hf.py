"""Hugging Face datasets for Text (IMDB) and Image (CIFAR-10): the hub cache under data_dir, or a local snapshot.

Both sources go through the one `datasets.load_dataset` call: the hub name with `cache_dir=<data_dir>/hf` (filled
by `python -m data_prep.download`), or a local directory holding the hub repository's files (its parquet files,
with or without the repository's README that names the config). Columns come back as one Arrow table, so that
images stay encoded bytes and texts stay strings until the task tokenizes them. `datasets` is imported only
here and only when needed: it is slow to import and the other tasks never use it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from lra.errors import LRAError

TRUE = {"1", "on", "yes", "true"}


def offline() -> bool:
    """Whether the user or the tests told Hugging Face libraries not to use the network."""
    return any(os.environ.get(flag, "").lower() in TRUE for flag in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))


def download_hint(dataset: str, hf_cache: Path) -> str:
    """The command that fills `hf_cache` with `dataset` (data_prep.download puts the cache at <out>/hf)."""
    if hf_cache.name == "hf":
        return f"python -m data_prep.download {dataset} --out {hf_cache.parent}"
    return f"python -m data_prep.download {dataset} --out {hf_cache.parent} --hf-cache {hf_cache}"


def parquet_files(path: Path) -> list[Path]:
    return sorted(path.rglob("*.parquet"))


def check_snapshot(path: Path, columns: Sequence[str], repo: str, integers: Sequence[str] = ("label",)) -> None:
    """Every parquet file of a local snapshot opens, has `columns`, and integer `integers`: a truncated or foreign
    file is named here (`datasets` would only name the whole snapshot)."""
    import pyarrow.parquet as pq

    for file in parquet_files(path):
        try:
            schema = pq.read_schema(file)
            names = schema.names
        except (OSError, pa.ArrowException) as err:
            reason = first_line(err)
            raise LRAError(f"{file}: not a readable parquet file ({reason}); copy it from {repo} again") from err
        missing = [c for c in columns if c not in names]
        if missing:
            raise LRAError(f"{file}: has columns {names}, lacks {missing}; expected a snapshot of {repo}")
        for column in integers:
            if not pa.types.is_integer(schema.field(column).type):
                raise LRAError(f"{file}: column {column!r} holds {schema.field(column).type}, expected integers")


def snapshot_config(path: Path, config: str) -> str | None:
    """The config to ask a local snapshot for: the hub's name if its README declares it, else the inferred one."""
    readme = path / "README.md"
    if readme.is_file() and f"config_name: {config}" in readme.read_text(encoding="utf-8", errors="replace"):
        return config
    return None


def load_table(source: str | Path, config: str | None, split: str, cache_dir: Path, failure: str) -> pa.Table:
    """One split as an Arrow table, via `datasets.load_dataset`; any failure is one LRAError line: `failure (why)`."""
    import datasets

    try:
        dataset = datasets.load_dataset(str(source), config, split=split, cache_dir=str(cache_dir))
    except Exception as err:  # noqa: BLE001 - offline, not cached, corrupt: all end the same way for the user
        cause = err.__cause__ if isinstance(err, datasets.exceptions.DatasetGenerationError) and err.__cause__ else err
        reason = f"{type(cause).__name__}: {first_line(cause)}"
        raise LRAError(f"{failure} ({reason})") from err
    return dataset.with_format("arrow")[:]


def read_split(
    dataset: tuple[str, str, str, str], columns: Sequence[str], split: str, path: Path, hf_cache: Path, from_hub: bool
) -> tuple[pa.Table, str]:
    """One split from the hub cache (`from_hub`) or the local snapshot at `path`, its `columns` checked; returns
    the table and how errors name it. `dataset` = (name in messages, hub repository, config, download name)."""
    what, repo, config, download = dataset
    if from_hub:
        where = f"{repo} ({split})"
        failure = (
            f"{what} not found: no {path} and no {repo} in the Hugging Face cache {hf_cache}; "
            f"get it with `{download_hint(download, hf_cache)}` or set task.path to a local copy"
        )
        table = load_table(repo, config, split, hf_cache, failure)
    else:
        where = f"{path} ({split})"
        failure = f"{where}: cannot load this snapshot of {repo}"
        table = load_table(path, snapshot_config(path, config), split, hf_cache, failure)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise LRAError(f"{where}: has columns {table.column_names}, lacks {missing}")
    return table, where


def first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
