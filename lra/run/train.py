"""`run(cfg)`: build data, model and trainer from a composed config, fit, test at the best checkpoint, record."""

from __future__ import annotations

import copy
import errno
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import WandbLogger

from lra.errors import LRAError
from lra.models import build_model, count_parameters
from lra.run.callbacks import Throughput
from lra.run.chance import ChanceWatch, attempt, begin_restart, check_chance
from lra.run.checkpoints import requeued, resume_path, verified
from lra.run.loggers import wandb_run_dir
from lra.run.optim import OptimSettings
from lra.run.precision import set_matmul_precision
from lra.run.pretrain import Pretrained, self_pretrain
from lra.run.results import Results, config_hash, git_commit, resume_fingerprint
from lra.run.rundir import claimed, finished_results, record_config
from lra.run.stage import Stage, training_data
from lra.run.task import LRATask
from lra.run.validate import check_config

# Errors of the file system that the user fixes by pointing the run elsewhere or freeing space.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def evaluate(trainer: pl.Trainer, task: LRATask, datamodule, best: ModelCheckpoint, last: str) -> dict:
    """Best-val accuracy, test accuracy at the best-val checkpoint (ours) and at the last one (LRA's)."""

    # weights_only=True: checkpoints are data; a crafted one is refused, never run (lra.run.checkpoints).
    def test(ckpt: str | None) -> float:
        metrics = trainer.test(task, datamodule=datamodule, ckpt_path=verified(ckpt), verbose=False, weights_only=True)
        return float(metrics[0]["test/acc"])

    test_last = test(last)
    if best.best_model_path:
        return {
            "best_val_acc": float(best.best_model_score),
            "test_acc": test(best.best_model_path),
            "test_acc_last": test_last,
        }
    # No validation ran during fit (max_steps below trainer.val_check_interval): the last weights are the best.
    metrics = trainer.validate(task, datamodule=datamodule, ckpt_path=last, verbose=False, weights_only=True)
    val = float(metrics[0]["val/acc"])
    return {"best_val_acc": val, "test_acc": test_last, "test_acc_last": test_last}


def run(cfg: DictConfig) -> float:
    """Train and test one configuration; returns best-val accuracy (what sweeps optimise)."""
    check_config(cfg)
    check_chance(cfg)
    set_matmul_precision(cfg.matmul_precision)
    output_dir = Path(cfg.output_dir).resolve()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with claimed(output_dir):
            if (done := finished_results(cfg, output_dir, resuming(cfg))) is not None:
                print(f"{output_dir} finished at step {done['step']} before: nothing to do (its files are unchanged; "
                      "raise trainer.max_steps to train further)")
                report(done, output_dir / "results.json", None)
                return done["best_val_acc"]
            record_config(cfg, output_dir)
            return with_restarts(cfg, output_dir)
    except OSError as err:
        if err.errno in DISK_ERRORS:
            where = err.filename or output_dir
            raise LRAError(
                f"cannot write {where}: {err.strerror}; free space or point output_dir (hydra.run.dir) elsewhere"
            ) from err
        raise


def resuming(cfg: DictConfig) -> bool:
    return cfg.resume == "auto" or cfg.ckpt_path is not None or requeued()


def with_restarts(cfg: DictConfig, output_dir: Path) -> float:
    """Train; a run stuck at chance under on_chance=restart trains again in the same directory with the next seed."""
    first_seed = int(cfg.seed)
    seed, restarts = attempt(output_dir, first_seed, resuming(cfg))
    # pretrain=mlm: once, with the first seed; a restart fine-tunes the same pretrained encoder with the next seed.
    pretrained = self_pretrain(cfg, output_dir, resuming(cfg))
    while True:
        this = copy.deepcopy(cfg)
        this.seed = seed
        best_val = fit_and_test(this, output_dir, first_seed, restarts, pretrained)
        if best_val is not None:
            return best_val
        restarts += 1
        begin_restart(output_dir, output_dir / "checkpoints", first_seed, seed, restarts)
        print(f"restart {restarts} of {cfg.chance.max_restarts}: seed={seed + 1} (stuck seed {seed}'s checkpoints: "
              f"{output_dir / f'stuck-seed{seed}'})")
        seed += 1
        cfg = copy.deepcopy(cfg)
        cfg.ckpt_path, cfg.resume = None, None  # the next seed starts afresh


def fit_and_test(
    cfg: DictConfig, output_dir: Path, first_seed: int, restarts: int, pretrained: Pretrained | None = None
) -> float | None:
    """One attempt (from the `pretrained` encoder, if any); None when it was stuck at chance and on_chance=restart
    has restarts left."""
    pl.seed_everything(cfg.seed, workers=True)
    # A refused resume (another configuration) stops before any data is read or model built.
    resume_from = resume_path(cfg.ckpt_path, cfg.resume, output_dir / "checkpoints", resume_fingerprint(cfg))
    # First: a bad model option stops before any data is read. Self-pretrained: that encoder, a fresh head.
    model = build_model(cfg.model, cfg.task, mask_token=pretrained is not None)
    if pretrained is not None:
        pretrained.load_into(model.encoder)
    datamodule = training_data(cfg)
    task = LRATask(model, cfg.task.n_classes, OptimSettings.from_config(cfg.optim, cfg.trainer.max_steps))
    throughput = Throughput()
    restart = cfg.on_chance == "restart" and restarts < cfg.chance.max_restarts
    then = "stopping; restarting with the next seed" if restart else (
        "continuing (no restarts left)" if cfg.on_chance == "restart" else "continuing (on_chance=restart retries)"
    )
    chance = ChanceWatch(cfg.chance.patience, cfg.chance.margin, stop=restart, then=then)
    stage = Stage(
        cfg, output_dir, resume_fingerprint(cfg), resume_from, None, best=True, callbacks=[throughput, chance]
    )

    def finish(trainer: pl.Trainer) -> tuple[Results, tuple[Path, Path | None] | None]:
        """The results, and where rank zero wrote them (results.json, the W&B run)."""
        results = Results(
            task=cfg.task.name,
            model=cfg.model.name,
            seed=int(cfg.seed),
            first_seed=first_seed,
            restarts=restarts,
            stuck_at_chance=chance.stuck,
            recipe=cfg.get("recipe", "custom"),
            headline=cfg.get("headline", "best"),  # which checkpoint's test accuracy the recipe reports
            impl=cfg.model.impl,
            **evaluate(trainer, task, datamodule, stage.best, str(stage.last)),
            val_is_test=cfg.task.get("val_split") == "test",
            steps_per_s=throughput.steps_per_s(),
            train_wall_s=throughput.wall_s(),
            hardware=throughput.hardware,
            peak_memory_mb=throughput.peak_memory_mb,
            memory_method=throughput.memory_method,
            n_params=count_parameters(model),
            step=trainer.global_step,
            skipped_steps=stage.guard.skipped,
            config_hash=config_hash(cfg),
            git_commit=git_commit(),
            pretrain=None if pretrained is None else pretrained.record,
        )
        if not trainer.is_global_zero:  # under DDP every rank evaluates; one writes
            return results, None
        path = results.write(output_dir)
        for logger in stage.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.summary.update(results.record())
        return results, (path, wandb_run_dir(stage.loggers))

    done = stage.run(task, datamodule, finish, abandon=lambda: restart and chance.stuck)
    if done is None:
        return None
    results, written = done
    if written is not None:
        report(results.record(), *written)  # last, after W&B's own closing output
    return results.best_val_acc


def report(results: dict, path: Path, wandb_dir: Path | None) -> None:
    """The run's closing lines, from its results.json record (this run's, or a finished run's on file)."""
    print(
        f"\n{results['task']} / {results['model']} (seed {results['seed']}, step {results['step']}): "
        f"best val acc {results['best_val_acc']:.4f}, test acc {results['test_acc']:.4f} at the best-val checkpoint "
        f"({results['test_acc_last']:.4f} at the last)"
    )
    print(f"run files: {path.parent}  (results: {path.name}, checkpoints: checkpoints/)")
    if wandb_dir is not None:
        print(f"W&B run: {wandb_dir}  (upload an offline run with `wandb sync {wandb_dir}`)")
