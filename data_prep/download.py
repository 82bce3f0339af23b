"""Fetch the LRA data: `python -m data_prep.download lra|imdb|cifar10 --out DIR` (DIR = the harness's data_dir).

lra      The LRA release archive (`lra_release.gz`, about 8 GB) from the LRA authors' public bucket. The download
         resumes where it stopped (HTTP Range on DIR/lra_release.gz.part) and is renamed to lra_release.gz when
         complete. It is unpacked into a temporary folder in DIR, and each task folder of the release
         (listops-1000, tsv_data, pathfinder32, pathfinder128, ...) is then renamed into DIR: the layout the tasks
         read. Folders already in DIR are left alone; the archive is kept (delete it to save the space).
imdb     The Hugging Face dataset stanfordnlp/imdb (Text), via `datasets.load_dataset` into DIR/hf.
cifar10  The Hugging Face dataset uoft-cs/cifar10 (Image), likewise.

Offline, every command fails at once with one line saying so.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from lra.atomic import publish_directory
from lra.data.hf import first_line, offline
from lra.errors import LRAError

LRA_URL = "https://storage.googleapis.com/long-range-arena/lra_release.gz"
ARCHIVE = "lra_release.gz"
RELEASE_FOLDERS = ("listops-1000", "tsv_data", "pathfinder32", "pathfinder128")
HF_DATASETS = {  # name -> (hub repository, config, the task that reads it)
    "imdb": ("stanfordnlp/imdb", "plain_text", "text"),
    "cifar10": ("uoft-cs/cifar10", "plain_text", "image"),
}
CHUNK = 1 << 20


def fetch(url: str, target: Path, timeout: float) -> None:
    """Download `url` to `target`, resuming a partial `<target>.part`; renamed to `target` only when complete."""
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left after `have` bytes: the part file is the whole archive
            os.replace(part, target)
            return
        raise LRAError(f"cannot download {url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise LRAError(
            f"cannot reach {url} ({reason}); offline? download it on a connected machine and put it at {target}"
        ) from None
    with response:
        resumed = response.status == 206
        start = have if resumed else 0  # a server that ignores Range sends everything again
        length = response.headers.get("Content-Length")
        total = start + int(length) if length else None
        try:
            with (
                open(part, "ab" if resumed else "wb") as f,
                tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=target.name) as bar,
            ):
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as err:
            raise LRAError(
                f"download of {url} interrupted at {part.stat().st_size} bytes ({err}); run the same command to resume"
            ) from None
    size = part.stat().st_size
    if total is not None and size != total:
        raise LRAError(f"download of {url} stopped at {size} of {total} bytes; run the same command to resume")
    os.replace(part, target)


def release_root(folder: Path) -> Path:
    """The unpacked folder that holds the task folders (the archive nests them as lra_release/[lra_release/])."""
    for candidate in [folder, *sorted(p for p in folder.glob("*") if p.is_dir()), *sorted(folder.glob("*/*"))]:
        if any((candidate / name).is_dir() for name in RELEASE_FOLDERS):
            return candidate
    raise LRAError(f"the archive holds none of {', '.join(RELEASE_FOLDERS)}: not the LRA release")


def open_archive(archive: Path) -> BinaryIO:
    """The tar stream inside `archive`, gunzipped if it is gzip. GzipFile raises EOFError on a truncated archive,
    which tarfile's own gzip stream would take for a normal end of the archive."""
    with open(archive, "rb") as f:
        magic = f.read(2)
    return gzip.open(archive, "rb") if magic == b"\x1f\x8b" else open(archive, "rb")


def unpack(archive: Path, out: Path) -> list[Path]:
    """Unpack into a temporary folder in `out`, then rename each release folder into `out` (existing ones kept)."""
    options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # no paths outside `tmp`, no devices
    moved = []
    with tempfile.TemporaryDirectory(prefix=f".{ARCHIVE}.unpack-", dir=out, ignore_cleanup_errors=True) as tmp:
        try:
            with open_archive(archive) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tqdm(tar, desc=f"unpacking {archive.name}", unit=" files"):  # one pass over the 8 GB
                    tar.extract(member, tmp, **options)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
            raise LRAError(f"{archive}: cannot unpack ({first_line(err)}); delete it and download again") from None
        for folder in sorted(release_root(Path(tmp)).iterdir()):
            target = out / folder.name
            if target.exists() or not publish_directory(folder, target):  # another unpack's copy may have won
                print(f"kept the existing {target} (delete it and run again to replace it)")
                continue
            moved.append(target)
    return moved


def fetch_release(out: Path, url: str, timeout: float) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    archive = out / ARCHIVE
    if archive.is_file():
        print(f"using the downloaded {archive}")
    else:
        fetch(url, archive, timeout)
    moved = unpack(archive, out)
    for path in moved:
        print(f"unpacked {path}")
    print(f"the archive {archive} can be deleted now ({archive.stat().st_size / 1e9:.1f} GB)")
    return moved


def fetch_hf(name: str, hf_cache: Path) -> None:
    """`datasets.load_dataset` of a hub dataset into `hf_cache`, where the tasks look (task.hf_cache)."""
    repo, config, task = HF_DATASETS[name]
    if offline():
        raise LRAError(
            f"offline (HF_DATASETS_OFFLINE or HF_HUB_OFFLINE is set): cannot download {repo}; run this on a "
            f"connected machine without those variables, then copy {hf_cache} here"
        )
    import datasets

    try:
        datasets.load_dataset(repo, config, cache_dir=str(hf_cache))
    except Exception as err:  # noqa: BLE001 - network, disk or hub: one line either way
        raise LRAError(f"cannot download {repo} into {hf_cache} ({type(err).__name__}: {first_line(err)})") from None
    print(f"{repo} is in {hf_cache}: `python train.py task={task}` reads it from there")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.download", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["lra", *HF_DATASETS], help="what to fetch")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("LRA_DATA", "data")), help="the data_dir")
    parser.add_argument("--hf-cache", type=Path, default=None, help="Hugging Face cache (default: OUT/hf)")
    parser.add_argument("--url", default=LRA_URL, help="where lra_release.gz is (default: the LRA authors' bucket)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        if args.what == "lra":
            fetch_release(args.out, args.url, args.timeout)
        else:
            fetch_hf(args.what, args.hf_cache or args.out / "hf")
    except LRAError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
