"""results.json: the one record of a run that the leaderboard reads."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lra.atomic import write_text

# Keys that say where or how a run executes, not what it computes: left out of the config hash, so that the
# seeds of one configuration (and reruns elsewhere) share a hash.
UNHASHED = (
    "seed", "data_dir", "output_dir", "ckpt_path", "resume", "requeue", "checkpoint_every", "logger", "on_chance",
    "chance", "pretrain.from", "model.compile",  # compiled or not: the same model, the same run
)
# Also free to change when resuming: how long to train and how the machine reads data.
RESUMABLE = ("trainer.max_steps", "trainer.enable_progress_bar", "task.num_workers")
FIELDS = (
    "task", "model", "seed", "first_seed", "restarts", "stuck_at_chance", "recipe", "impl", "best_val_acc", "test_acc",
    "test_acc_last", "val_is_test", "steps_per_s", "peak_memory_mb", "memory_method", "n_params", "step",
    "skipped_steps", "config_hash", "git_commit",
)


def digest(cfg: DictConfig, drop: tuple[str, ...]) -> str:
    """Hash of the resolved config without the dotted keys in `drop` (and without where the data lives)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in (*drop, "task.path", "task.cache_dir"):
        *parents, leaf = key.split(".")
        node = container
        for parent in parents:
            node = node.get(parent, {})
        node.pop(leaf, None)
    blob = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def config_hash(cfg: DictConfig) -> str:
    """Same for every seed and rerun of one configuration: the leaderboard groups runs by it."""
    return digest(cfg, UNHASHED)


def resume_fingerprint(cfg: DictConfig) -> str:
    """Same only for the run itself (seed included), so a checkpoint is never resumed into a different run."""
    return digest(cfg, tuple(k for k in UNHASHED if k != "seed") + RESUMABLE)


REPO = Path(__file__).resolve().parents[2]


def git_commit(repo: Path = REPO) -> str:
    """HEAD of the code's repository, `-dirty` when it has uncommitted changes; `unknown` outside git."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def write_results(run_dir: Path, results: dict) -> Path:
    return write_text(run_dir / "results.json", json.dumps(results, indent=2, sort_keys=False) + "\n")


def read_results(path: Path) -> dict:
    return json.loads(Path(path).read_text())
