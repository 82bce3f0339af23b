"""`run(cfg)`: build data, model and trainer from a composed config, fit, test at the best checkpoint, record."""

from __future__ import annotations

import copy
import errno
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from lra.data.base import LRADataModule
from lra.errors import LRAError
from lra.models import build_model, count_parameters
from lra.run.callbacks import Throughput
from lra.run.chance import ChanceWatch, attempt, begin_restart, check_chance
from lra.run.checkpoints import LAST, AtomicCheckpointIO, RunState, checkpoint_callbacks, requeued, resume_path
from lra.run.guards import NonFiniteGuard
from lra.run.loggers import build_loggers, finish_wandb, wandb_run_dir
from lra.run.precision import set_matmul_precision
from lra.run.preemption import Preemption
from lra.run.pretrain import Pretrained, self_pretrain
from lra.run.results import config_hash, git_commit, resume_fingerprint, write_results
from lra.run.task import LRATask
from lra.run.validate import check_config, check_dataset_size

# Task config keys that describe the task to the model and optimizer rather than configure the DataModule.
TASK_META = ("name", "vocab_size", "n_classes", "dual", "interaction", "recipe")
# Errors of the file system that the user fixes by pointing the run elsewhere or freeing space.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def build_datamodule(task: DictConfig, seed: int) -> LRADataModule:
    options = {k: v for k, v in OmegaConf.to_container(task, resolve=True).items() if k not in TASK_META}
    try:
        datamodule = hydra.utils.instantiate(options)
    except hydra.errors.InstantiationException as err:
        raise LRAError(f"task config {task.name!r} cannot build its DataModule: {err.__cause__ or err}") from err
    if datamodule.vocab_size != task.vocab_size:
        raise LRAError(f"task.vocab_size={task.vocab_size} but the {task.name} tokenizer has {datamodule.vocab_size}")
    datamodule.seed = seed
    return datamodule


def evaluate(trainer: pl.Trainer, task: LRATask, datamodule, best: ModelCheckpoint, last: str) -> dict:
    """Best-val accuracy, test accuracy at the best-val checkpoint (ours) and at the last one (LRA's)."""

    # weights_only=True: checkpoints are data; a crafted one is refused, never run (lra.run.checkpoints).
    def test(ckpt: str | None) -> float:
        metrics = trainer.test(task, datamodule=datamodule, ckpt_path=ckpt, verbose=False, weights_only=True)
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
        return with_restarts(cfg, output_dir)
    except OSError as err:
        if err.errno in DISK_ERRORS:
            where = err.filename or output_dir
            raise LRAError(
                f"cannot write {where}: {err.strerror}; free space or point output_dir (hydra.run.dir) elsewhere"
            ) from err
        raise


def with_restarts(cfg: DictConfig, output_dir: Path) -> float:
    """Train; a run stuck at chance under on_chance=restart trains again in the same directory with the next seed."""
    first_seed = int(cfg.seed)
    resuming = cfg.resume == "auto" or cfg.ckpt_path is not None or requeued()
    seed, restarts = attempt(output_dir, first_seed, resuming)
    # pretrain=mlm: once, with the first seed; a restart fine-tunes the same pretrained encoder with the next seed.
    pretrained = self_pretrain(cfg, output_dir, resuming, build_datamodule)
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
    checkpoints = output_dir / "checkpoints"
    # First: a bad model option stops before any data is read. Self-pretrained: that encoder, a fresh head.
    model = build_model(cfg.model, cfg.task, mask_token=pretrained is not None)
    if pretrained is not None:
        pretrained.load_into(model.encoder)
    datamodule = build_datamodule(cfg.task, cfg.seed)
    # Every process calls it (every DDP rank, every job of an array): under the cache's lock one builds what is
    # missing and the others wait, then read the published cache (lra.data.base.LRADataModule.prepare_data).
    datamodule.prepare_data()
    datamodule.setup("fit")
    check_dataset_size(datamodule, cfg.task.batch_size)
    task = LRATask(
        model, n_classes=cfg.task.n_classes, total_steps=cfg.trainer.max_steps,
        **OmegaConf.to_container(cfg.optim, resolve=True),
    )
    ckpt_path = resume_path(cfg.ckpt_path, cfg.resume, checkpoints)
    loggers = build_loggers(cfg.get("logger"), output_dir)
    best, periodic = checkpoint_callbacks(checkpoints, cfg.checkpoint_every)
    throughput = Throughput()
    guard = NonFiniteGuard(cfg.on_nonfinite, checkpoints)
    preemption = Preemption(checkpoints / f"{LAST}.ckpt", requeue=cfg.requeue)
    restart = cfg.on_chance == "restart" and restarts < cfg.chance.max_restarts
    then = "stopping; restarting with the next seed" if restart else (
        "continuing (no restarts left)" if cfg.on_chance == "restart" else "continuing (on_chance=restart retries)"
    )
    chance = ChanceWatch(cfg.chance.patience, cfg.chance.margin, stop=restart, then=then)
    callbacks = [best, periodic, throughput, guard, preemption, chance, RunState(resume_fingerprint(cfg))]
    if loggers:
        callbacks.append(LearningRateMonitor("step"))
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=loggers or False, callbacks=callbacks, default_root_dir=str(output_dir),
        plugins=[AtomicCheckpointIO()],
    )
    preemption.install()
    try:
        try:
            trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except SIGTERMException:  # Lightning's own reaction to SIGTERM: save now if Preemption has not yet
            preemption.interrupted(trainer)
        if (stopped := preemption.stopped()) is not None:
            raise stopped
        if restart and chance.stuck:
            return None
        last = str(checkpoints / f"{LAST}.ckpt")
        trainer.save_checkpoint(last)  # the final state, whatever step the periodic saves last hit
        results = {
            "task": cfg.task.name,
            "model": cfg.model.name,
            "seed": int(cfg.seed),
            "first_seed": first_seed,
            "restarts": restarts,
            "stuck_at_chance": chance.stuck,
            "recipe": cfg.get("recipe", "custom"),
            "impl": cfg.model.impl,
            **evaluate(trainer, task, datamodule, best, last),
            # Validation on the test set (Text as LRA ran it) makes the best-val choice a choice on test.
            "val_is_test": cfg.task.get("val_split") == "test",
            "steps_per_s": throughput.steps_per_s(),
            "peak_memory_mb": throughput.peak_memory_mb,
            "memory_method": throughput.memory_method,
            "n_params": count_parameters(model),
            "step": trainer.global_step,
            "skipped_steps": guard.skipped,
            "config_hash": config_hash(cfg),
            "git_commit": git_commit(),
        }
        if pretrained is not None:
            results["pretrain"] = pretrained.record
        if trainer.is_global_zero:  # under DDP every rank evaluates; one writes
            path = write_results(output_dir, results)
            for logger in loggers:
                if isinstance(logger, WandbLogger):
                    logger.experiment.summary.update(results)
            wandb_dir = wandb_run_dir(loggers)
    finally:
        preemption.uninstall()
        finish_wandb(loggers)
    if trainer.is_global_zero:
        report(results, path, wandb_dir)  # last, after W&B's own closing output
    return results["best_val_acc"]


def report(results: dict, path: Path, wandb_dir: Path | None) -> None:
    print(
        f"\n{results['task']} / {results['model']} (seed {results['seed']}, step {results['step']}): "
        f"best val acc {results['best_val_acc']:.4f}, test acc {results['test_acc']:.4f} at the best-val checkpoint "
        f"({results['test_acc_last']:.4f} at the last)"
    )
    print(f"run files: {path.parent}  (results: {path.name}, checkpoints: checkpoints/)")
    if wandb_dir is not None:
        print(f"W&B run: {wandb_dir}  (upload an offline run with `wandb sync {wandb_dir}`)")
