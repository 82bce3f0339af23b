"""results.json: the one record of a run that the leaderboard reads."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lra.atomic import write_text

# Keys that say where or how a run executes, not what it computes: left out of the config hash, so that the
# seeds of one configuration (and reruns elsewhere) share a hash.
UNHASHED = (
    "seed", "data_dir", "output_dir", "ckpt_path", "resume", "requeue", "checkpoint_every", "logger", "on_chance",
    "chance", "pretrain.from", "headline", "recipe_models",
    "model.compile",  # compiled or not: the same model, the same run
)
# Also free to change when resuming: how long to train and how the machine reads data.
RESUMABLE = ("trainer.max_steps", "trainer.enable_progress_bar", "task.num_workers")


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


@dataclass(frozen=True)
class Results:
    """What results.json records of a fine-tuned run, in this order: the one list of its fields."""

    task: str
    model: str
    seed: int
    first_seed: int
    restarts: int
    stuck_at_chance: bool
    recipe: str
    headline: str  # best | last: the checkpoint whose test accuracy the recipe's authors reported
    impl: str
    best_val_acc: float
    test_acc: float  # at the best-val checkpoint
    test_acc_last: float  # at the last checkpoint (what LRA reported)
    val_is_test: bool  # validation on the test set (Text as LRA ran it): the best-val choice is a choice on test
    steps_per_s: float | None
    train_wall_s: float | None  # the fit's wall time, summed over resumed segments (None: resumed from an older run)
    hardware: str  # where steps/s and the wall time were measured (lra.hardware.describe)
    peak_memory_mb: float | None
    memory_method: str | None
    n_params: int
    step: int
    skipped_steps: int
    config_hash: str
    git_commit: str
    pretrain: dict | None = None  # the self-pretraining record (lra.run.pretrain); absent from the file without it

    def record(self) -> dict:
        record = asdict(self)
        if record["pretrain"] is None:
            del record["pretrain"]
        return record

    def write(self, run_dir: Path) -> Path:
        return write_text(run_dir / "results.json", json.dumps(self.record(), indent=2, sort_keys=False) + "\n")


def read_results(path: Path) -> dict:
    """A results.json as written (a finished run's record, read back when it is submitted again)."""
    return json.loads(Path(path).read_text())


# The keys every results.json has.
FIELDS = tuple(f.name for f in fields(Results) if f.default is MISSING)
