"""A run directory's records are never lost to a later start: one live process at a time, its first start's
configuration kept, a finished run submitted again left as it is.

Every start of a directory (a resume, a SLURM requeue, a sweep submitted again, a refused start) may add to what
is there, never delete or rewrite it: this module decides what a start may do before it writes anything.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from lra.atomic import atomic_directory
from lra.errors import LRAError
from lra.lock import exclusive_or_refuse
from lra.run.results import read_results, resume_fingerprint

LOCK = ".lock"  # in the run directory: held by the live process that trains it
RECORD = ".hydra"  # the first start's config.yaml, hydra.yaml and overrides.yaml (conf/train.yaml: output_subdir)
# Environment variables naming a process's rank: only the first process of a (DDP, multi-node) run holds the lock.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def launching_process() -> bool:
    """Whether this is the run's first process (rank 0 of every kind), the one that holds the directory."""
    return all(os.environ.get(name, "0") in ("", "0") for name in RANK_VARIABLES)


@contextmanager
def claimed(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` for this run; a second live process on it is refused with one line."""
    if not launching_process():
        yield
        return
    busy = (
        f"{run_dir} is in use by another live process (it holds {run_dir / LOCK}); wait for it to end, "
        "or choose a new hydra.run.dir"
    )
    with exclusive_or_refuse(run_dir / LOCK, busy):
        yield


def record_config(cfg: DictConfig, run_dir: Path) -> None:
    """Write .hydra/ at the run's first start only: it records the configuration that produced the checkpoints,
    so a later start (refused or not) never replaces it. Hydra's own copy (rewritten by every start) is off."""
    if not HydraConfig.initialized() or not launching_process() or (run_dir / RECORD).exists():
        return
    hydra = HydraConfig.get()
    with atomic_directory(run_dir / RECORD) as tmp:
        OmegaConf.save(cfg, tmp / "config.yaml")
        OmegaConf.save(OmegaConf.create({"hydra": hydra}), tmp / "hydra.yaml")
        OmegaConf.save(OmegaConf.create(list(hydra.overrides.task)), tmp / "overrides.yaml")


def finished_results(cfg: DictConfig, run_dir: Path, resuming: bool) -> dict | None:
    """The results of a run that already reached `trainer.max_steps` when this start resumes it with the same
    configuration (a sweep submitted again): the start then has nothing to do and changes nothing. None when there
    is training left, or the configuration differs (refused where the checkpoints are read: lra.run.checkpoints)."""
    path = run_dir / "results.json"
    if not resuming or not path.is_file():
        return None
    try:
        results = read_results(path)
        step, seed = int(results["step"]), int(results["seed"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        problem = f"{type(err).__name__}: {err}"
        raise LRAError(f"{path} is unreadable ({problem}); move it aside to train this run again") from None
    if step < cfg.trainer.max_steps:
        return None  # trained further (trainer.max_steps raised): resumes from its last checkpoint
    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        stored = torch.load(last, map_location="cpu", weights_only=True, mmap=True)["lra"]["fingerprint"]
    except Exception:  # noqa: BLE001 - unreadable: the resume path passes over it to the newest good checkpoint
        return None
    # Another configuration: not this run's results; the resume path refuses it with the stage's own message.
    return results if stored == resume_fingerprint(OmegaConf.merge(cfg, {"seed": seed})) else None


# A path of only these characters means the same to the shell and to Hydra's override parser, unquoted.
PLAIN = re.compile(r"[A-Za-z0-9_./@%+-]+")


def hydra_quoted(value: str) -> str:
    """`value` as one double-quoted Hydra override value: read back verbatim, no interpolation (`${`) resolved."""
    value = re.sub(r'(\\*)"', lambda m: m.group(1) * 2 + '\\"', value)
    value = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, value)
    return '"' + value.replace("${", "\\${") + '"'


def resume_override(run_dir: Path) -> str:
    """`hydra.run.dir=<run_dir>` to paste into a shell: quoted for the shell and for Hydra where needed, so a
    directory named with spaces, quotes or `$( )` is passed as it is and never runs anything."""
    if PLAIN.fullmatch(str(run_dir)):
        return f"hydra.run.dir={run_dir}"
    return shlex.quote(f"hydra.run.dir={hydra_quoted(str(run_dir))}")
