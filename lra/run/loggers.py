"""Experiment loggers: W&B offline unless the user is logged in, plus whatever `logger=` selects.

A run keeps one W&B run for its whole life: its id is stored in the run directory (`wandb_id`) at the first start
and resumed from there by every later start of that directory (`resume=auto`, a SLURM requeue), so the curves are
not split and the project does not count the run twice; a new run directory draws a new id.
"""

from __future__ import annotations

import csv
import io
import netrc
import os
import secrets
import string
from pathlib import Path

import hydra
from omegaconf import DictConfig
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from lra.atomic import create_text, write_text

WANDB_ID = "wandb_id"  # in the run directory: the id of its W&B run


def wandb_logged_in() -> bool:
    """An API key in the environment or in ~/.netrc (where `wandb login` writes it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def set_wandb_mode() -> str:
    """Decide online/offline before any wandb call; an explicit WANDB_MODE from the user wins."""
    os.environ.setdefault("WANDB_MODE", "online" if wandb_logged_in() else "offline")
    return os.environ["WANDB_MODE"]


def build_loggers(cfg: DictConfig | None, run_dir: Path, save_dir: Path | None = None) -> list[Logger]:
    """Instantiate every logger under `cfg.logger` (a dict of `_target_` configs, lightning-hydra-template style);
    a W&B logger resumes the run directory's W&B run unless its config names an `id`. `save_dir` moves the other
    loggers' files (CSV) elsewhere: a second stage's CSV logger would replace the first one's metrics.csv."""
    if not cfg:
        return []
    loggers = []
    for c in cfg.values():
        if not c or "_target_" not in c:
            continue
        if "Wandb" in str(c["_target_"]):
            set_wandb_mode()
            loggers.append(hydra.utils.instantiate(c, id=c.get("id") or wandb_id(run_dir), resume="allow"))
        elif save_dir is not None and "save_dir" in c:
            loggers.append(hydra.utils.instantiate(c, save_dir=str(save_dir)))
        else:
            loggers.append(hydra.utils.instantiate(c))
    return loggers


def wandb_id(run_dir: Path) -> str:
    """The run directory's W&B run id, drawn and stored at its first start (the first of several processes wins:
    every DDP rank agrees on it)."""
    stored = run_dir / WANDB_ID
    if stored.is_file():
        return stored.read_text(encoding="utf-8").strip()
    run_dir.mkdir(parents=True, exist_ok=True)
    alphabet = string.ascii_lowercase + string.digits  # W&B's own id alphabet and length
    return create_text(stored, "".join(secrets.choice(alphabet) for _ in range(8)) + "\n").strip()


def wandb_run_dir(loggers: list[Logger]) -> Path | None:
    """The local directory of the W&B run (what `wandb sync` uploads), if a W&B logger is active."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            directory = getattr(logger.experiment, "dir", None)
            return Path(directory).parent if directory else None
    return None


def finish_wandb(loggers: list[Logger]) -> None:
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()


class AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes metrics.csv when it starts (any start of the run directory: a resume, a
    refused one, a finished run submitted again). This one keeps it and appends. The rows a killed process wrote
    after its last checkpoint are steps the resumed process trains again: at its first save, rows at or after the
    first step it logs are replaced by its own, so the file reads as an uninterrupted run's. Rewrites are atomic."""

    def _check_log_dir_exists(self) -> None:
        self.continuing = os.path.isfile(self.metrics_file_path)
        if self.continuing:
            self.metrics_keys = list(self.read()[0])

    def read(self) -> tuple[list[str], list[dict]]:
        with open(self.metrics_file_path, newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            return list(reader.fieldnames or []), list(reader)

    def save(self) -> None:
        if self.metrics and self.continuing:
            self.continuing = False
            first = min(int(row["step"]) for row in self.metrics)
            _, rows = self.read()
            kept = [row for row in rows if not row.get("step") or int(float(row["step"])) < first]
            if len(kept) < len(rows):
                self.rewrite(self.metrics_keys, kept)
        super().save()

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        self.rewrite(fieldnames, self.read()[1])

    def rewrite(self, fieldnames: list[str], rows: list[dict]) -> None:
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
        write_text(self.metrics_file_path, text.getvalue())


class AppendingCSVLogger(CSVLogger):
    """`logger=csv`: Lightning's CSVLogger whose metrics.csv survives every later start of the run (AppendingWriter)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment
