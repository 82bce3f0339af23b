"""Runs as their results.json files (and W&B run summaries) record them, each record checked before it counts."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from lra.errors import LRAError
from lra.run.config import CONF_DIR
from lra.run.loggers import wandb_logged_in

REQUIRED = ("task", "model", "seed", "config_hash", "best_val_acc", "test_acc")
OPTIONAL = (
    "test_acc_last", "steps_per_s", "peak_memory_mb", "n_params", "impl", "val_is_test", "stuck_at_chance", "restarts",
    "recipe", "pretrain", "headline", "hardware",
)
# Which checkpoint's test accuracy a recipe's authors reported (the recipe's `headline`, conf/train.yaml).
CHECKPOINTS = ("best", "last")
# The model's label for a self-pretrained run (results.json has a `pretrain` record: lra.run.pretrain), so that it
# is its own row beside the same model trained from scratch.
PRETRAINED = "{model} +SPT"
# A name is at most this long, on one line: a record cannot blow up the tables or the time it takes to lay them out.
NAME_LIMIT = 200
# Upper bounds no real run reaches (a petabyte, a billion steps/s, ten trillion parameters): a bigger value is a
# damaged or hand-made record, and would overflow the averages and the plot's log axis.
LIMITS = {"steps_per_s": 1e9, "peak_memory_mb": 1e9, "n_params": 1e13}


@dataclass(frozen=True)
class Run:
    """One training run, as its results.json (or W&B summary) records it."""

    task: str
    model: str
    seed: int
    config_hash: str
    best_val_acc: float
    test_acc: float
    test_acc_last: float | None
    steps_per_s: float | None
    peak_memory_mb: float | None
    n_params: int | None
    source: str
    impl: str = "paper"
    val_is_test: bool = False
    stuck_at_chance: bool = False  # still at chance when training ended (lra.run.chance)
    restarts: int = 0  # new seeds tried after stuck attempts (on_chance=restart)
    recipe: str = "custom"  # the experiment it ran (nystrom/listops); results from before recipes existed: custom
    checkpoint: str = "best"  # the checkpoint its recipe's authors tested: best (validation) or last
    hardware: str | None = None  # where its steps/s was measured (results from before it was recorded: None)

    @property
    def headline_checkpoint(self) -> str:
        """`checkpoint`, except where validation is the test set (Text, as LRA ran it): choosing on it would peek,
        so the last checkpoint (what LRA read) heads there whatever the recipe says."""
        return "last" if self.val_is_test and self.test_acc_last is not None else self.checkpoint

    @property
    def headline(self) -> float:
        """The accuracy the leaderboard ranks by: test at the checkpoint of `headline_checkpoint`."""
        if self.headline_checkpoint == "last" and self.test_acc_last is not None:
            return self.test_acc_last
        return self.test_acc

    def identity(self) -> tuple:
        """Equal for two copies of one run (a results.json and the W&B summary it was uploaded to)."""
        return self.task, self.model, self.config_hash, self.seed, self.best_val_acc, self.test_acc


def shown(value, limit: int = 60) -> str:
    """A record's value in a skip line, cut short: a 5 MB string or a 400-digit integer is not echoed."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _name(value, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is {shown(value)}, not a name")
    if len(value) > NAME_LIMIT or not value.isprintable():
        raise ValueError(f"{key} is {shown(value)}, not a name (one line of at most {NAME_LIMIT} printable characters)")
    return value


def _number(value, key: str, low: float | None = None, high: float | None = None, optional: bool = False):
    if value is None and optional:
        return None
    high = LIMITS.get(key, high)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} is {shown(value)}, not a number")
    if isinstance(value, int) and abs(value) > 2**63:  # beyond float range for 10**400: math.isfinite overflows
        raise ValueError(f"{key} is {shown(value)}, outside [{low}, {high}]")
    if not math.isfinite(value):
        raise ValueError(f"{key} is {shown(value)}, not a number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{key}={value} is outside [{low}, {high}]")
    return value


def parse_run(data, source: str) -> Run:
    """Validate one record; ValueError names the first problem."""
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object but {type(data).__name__}")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    for key in ("task", "model", "config_hash"):
        _name(data[key], key)
    if isinstance(data["seed"], bool) or not isinstance(data["seed"], int) or abs(data["seed"]) > 2**63:
        raise ValueError(f"seed is {shown(data['seed'])}, not an integer")
    recipe = _name(data.get("recipe", "custom"), "recipe")
    impl = _name(str(data.get("impl", "paper")), "impl")
    checkpoint = data.get("headline") or recipe_checkpoint(recipe)
    if not isinstance(checkpoint, str) or checkpoint not in CHECKPOINTS:
        raise ValueError(f"headline is {shown(checkpoint)}, not one of {', '.join(CHECKPOINTS)}")
    stuck, restarts = data.get("stuck_at_chance"), data.get("restarts")
    if stuck is not None and not isinstance(stuck, bool):
        raise ValueError(f"stuck_at_chance is {shown(stuck)}, not true or false")
    if restarts is not None and (
        isinstance(restarts, bool) or not isinstance(restarts, int) or not 0 <= restarts < 2**31
    ):
        raise ValueError(f"restarts is {shown(restarts)}, not a non-negative integer")
    return Run(
        task=data["task"],
        model=PRETRAINED.format(model=data["model"]) if data.get("pretrain") else data["model"],
        seed=data["seed"],
        config_hash=data["config_hash"],
        best_val_acc=float(_number(data["best_val_acc"], "best_val_acc", 0.0, 1.0)),
        test_acc=float(_number(data["test_acc"], "test_acc", 0.0, 1.0)),
        test_acc_last=_number(data.get("test_acc_last"), "test_acc_last", 0.0, 1.0, optional=True),
        steps_per_s=_number(data.get("steps_per_s"), "steps_per_s", 0.0, optional=True),
        peak_memory_mb=_number(data.get("peak_memory_mb"), "peak_memory_mb", 0.0, optional=True),
        n_params=_number(data.get("n_params"), "n_params", 0, optional=True),
        source=source,
        impl=impl,
        val_is_test=bool(data.get("val_is_test", False)),
        stuck_at_chance=bool(stuck),
        restarts=restarts or 0,
        recipe=recipe,
        checkpoint=checkpoint,
        hardware=None if data.get("hardware") is None else _name(data["hardware"], "hardware"),
    )


@functools.cache
def recipe_checkpoint(recipe: str, conf: Path = CONF_DIR) -> str:
    """The checkpoint a recipe declares (`headline` in conf/experiment/<recipe>.yaml or an /experiment/ file it
    includes), for records written before results.json carried it; otherwise conf/train.yaml's default."""
    default = yaml.safe_load((conf / "train.yaml").read_text()).get("headline", "best")
    pending = [f"experiment/{recipe}.yaml"] if recipe != "custom" else []
    while pending:
        path = conf / pending.pop(0)
        if not path.is_file():
            continue
        data = yaml.safe_load(path.read_text()) or {}
        if "headline" in data:
            return str(data["headline"])
        pending += [f"{d.lstrip('/')}.yaml" for d in data.get("defaults", []) if isinstance(d, str)
                    and d.startswith("/experiment/")]
    return str(default)


def find_results(targets: Sequence[Path]) -> list[Path]:
    """results.json files: the targets that are files, and every one below the targets that are directories."""
    found = []
    for target in targets:
        if target.is_file():
            found.append(target)
        elif target.is_dir():
            found.extend(sorted(target.rglob("results.json")))
        else:
            raise LRAError(f"{target}: no such file or directory; pass run directories (or results.json files)")
    return found


def load_files(paths: Iterable[Path]) -> tuple[list[Run], list[str]]:
    runs, problems = [], []
    for path in paths:
        try:
            runs.append(parse_run(json.loads(path.read_text()), str(path)))
        except json.JSONDecodeError as err:
            problems.append(f"skipped {path}: invalid JSON (line {err.lineno}, column {err.colno}: {err.msg})")
        except (OSError, UnicodeDecodeError) as err:
            problems.append(f"skipped {path}: unreadable ({err})")
        except ValueError as err:
            problems.append(f"skipped {path}: {err}")
    return runs, problems


def load_wandb(project: str) -> tuple[list[Run], list[str]]:
    """Finished runs of a W&B project whose summary holds a results record; offline or failing: a note, no runs."""
    if not wandb_logged_in():
        return [], [f"W&B {project}: not logged in (run `wandb login` or set WANDB_API_KEY); skipped"]
    runs, problems = [], []
    try:
        import wandb

        for remote in wandb.Api(timeout=60).runs(project):
            summary = {key: remote.summary.get(key) for key in (*REQUIRED, *OPTIONAL)}
            if any(summary[key] is None for key in REQUIRED):
                continue  # unfinished, crashed, or not a training run of this harness
            source = f"wandb:{project}/{remote.id}"
            try:
                runs.append(parse_run(summary, source))
            except ValueError as err:
                problems.append(f"skipped {source}: {err}")
    except Exception as err:  # any failure of the network or of the API is a note, never a crash
        first_line = (str(err).strip().splitlines() or [""])[0]
        return [], [f"W&B {project}: cannot read runs ({type(err).__name__}: {first_line}); skipped"]
    return runs, problems


def deduplicate(runs: Iterable[Run]) -> list[Run]:
    seen, unique = set(), []
    for run in runs:
        if run.identity() not in seen:
            seen.add(run.identity())
            unique.append(run)
    return unique
