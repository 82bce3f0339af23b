"""One training stage, guarded: the engine of both fine-tuning (lra.run.train) and self-pretraining
(lra.run.pretrain).

A stage fits one LightningModule in its own directory (checkpoints under `<directory>/checkpoints/`): it resumes from
a checkpoint there, saves `step<N>.ckpt` every `checkpoint_every` steps, stops (or skips the step) on a non-finite
loss or gradient, checkpoints and stops on SIGTERM/SIGUSR1 (requeueing a SLURM job), records the run's fingerprint
in every checkpoint, logs to the run's loggers, and saves `last.ckpt` at the end; W&B is finished whatever happens.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from lra.data.base import LRADataModule
from lra.data.build import build_datamodule
from lra.run.checkpoints import (
    LAST,
    AtomicCheckpointIO,
    RunState,
    checkpoint_callbacks,
    periodic_checkpoint,
    resume_path,
)
from lra.run.guards import NonFiniteGuard
from lra.run.loggers import build_loggers, finish_wandb
from lra.run.preemption import Preemption
from lra.run.validate import check_dataset_size

T = TypeVar("T")

# Lightning warns on every mid-epoch resume that the dataloader "is not resumable"; ours is: the training sampler
# skips the batches already trained on (lra.data.sampling.EpochShuffle, tests/test_run_resume.py), so the warning
# would only make a user doubt an exact resume.
warnings.filterwarnings("ignore", message=r"You're resuming from a checkpoint that ended before the epoch ended")


def training_data(cfg: DictConfig) -> LRADataModule:
    """The task's DataModule, prepared and set up for fitting, its training split checked against the batch size.

    Every process calls it (every DDP rank, every job of an array): under the cache's lock one builds what is
    missing and the others wait, then read the published cache (lra.data.base.LRADataModule.prepare_data)."""
    datamodule = build_datamodule(cfg.task, cfg.seed)
    datamodule.prepare_data()
    datamodule.setup("fit")
    check_dataset_size(datamodule, cfg.task.batch_size)
    return datamodule


class Stage:
    """The trainer of one stage and its guards, built from the run's config (`trainer`, `logger`, `checkpoint_every`,
    `on_nonfinite`, `requeue`); `run` fits.

    `ckpt_path`, `resume`: what to resume from (lra.run.checkpoints.resume_path). `best`: also keep the
    best-validation checkpoint (`self.best`). `callbacks`: the stage's own. `run_dir`: the run directory the resume
    command names (default: `directory`); a stage in a subdirectory of it writes its CSV log there.
    `trainer_options` replace values of `cfg.trainer`."""

    def __init__(
        self,
        cfg: DictConfig,
        directory: Path,
        fingerprint: str,
        ckpt_path: str | None,
        resume: str | None,
        *,
        best: bool = False,
        callbacks: Sequence[pl.Callback] = (),
        run_dir: Path | None = None,
        **trainer_options,
    ) -> None:
        self.directory = directory
        self.checkpoints = directory / "checkpoints"
        self.last = self.checkpoints / f"{LAST}.ckpt"
        self.ckpt_path = resume_path(ckpt_path, resume, self.checkpoints)
        run_dir = directory if run_dir is None else run_dir
        # The run's W&B run (every stage logs to it); a stage in a subdirectory keeps a CSV log of its own there.
        self.loggers = build_loggers(cfg.get("logger"), run_dir, save_dir=None if run_dir == directory else directory)
        saving: tuple[ModelCheckpoint, ...] = (
            checkpoint_callbacks(self.checkpoints, cfg.checkpoint_every) if best
            else (periodic_checkpoint(self.checkpoints, cfg.checkpoint_every),)
        )
        self.best = saving[0] if best else None
        self.guard = NonFiniteGuard(cfg.on_nonfinite, self.checkpoints)
        self.preemption = Preemption(self.last, requeue=cfg.requeue, run_dir=run_dir)
        every = [*saving, *callbacks, self.guard, self.preemption, RunState(fingerprint)]
        if self.loggers:
            every.append(LearningRateMonitor("step"))
        self.trainer: pl.Trainer = hydra.utils.instantiate(
            cfg.trainer, **trainer_options, logger=self.loggers or False, callbacks=every,
            default_root_dir=str(directory), plugins=[AtomicCheckpointIO()],
        )

    def run(
        self, module: pl.LightningModule, datamodule: pl.LightningDataModule, finish: Callable[[pl.Trainer], T],
        abandon: Callable[[], bool] = lambda: False,
    ) -> T | None:
        """Fit, then save `last.ckpt` and return `finish(trainer)` (the stage's record, made while W&B still runs).

        A signal raises lra.run.preemption.Preempted once the checkpoint is saved. `abandon()` true after the fit:
        nothing is saved and None returned (a run stuck at chance that restarts with the next seed)."""
        trainer = self.trainer
        self.preemption.install()
        try:
            try:
                trainer.fit(module, datamodule=datamodule, ckpt_path=self.ckpt_path, weights_only=True)
            except SIGTERMException:  # Lightning's own reaction to SIGTERM: save now if Preemption has not yet
                self.preemption.interrupted(trainer)
            if (stopped := self.preemption.stopped()) is not None:
                raise stopped
            if abandon():
                return None
            trainer.save_checkpoint(self.last)  # the final state, whatever step the periodic saves last hit
            return finish(trainer)
        finally:
            self.preemption.uninstall()
            finish_wandb(self.loggers)
