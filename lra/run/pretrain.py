"""Self-pretraining (Amos, Berant, Gupta, "Never Train from Scratch", ICLR 2024): before fine-tuning, the task's own
encoder learns to predict masked tokens of the training split's inputs (labels unused); the fine-tuning then starts
from that encoder with a fresh classifier head (`pretrain=mlm`; lra.run.train).

- [MASK] is token id `task.vocab_size`: with `pretrain` set, both stages build the encoder with one more embedding
  row (`build_model(..., mask_token=True)`), so the pretrained encoder loads into the fine-tuned one as it is (the
  row is unused there: d_model more parameters). The head predicts the task's own ids, never [MASK].
- Of the real tokens (never padding, nor id 0 under model.zero_is_pad), a `pretrain.mask_rate` share is chosen;
  `pretrain.split` of them become [MASK], a random id in 1..vocab_size-1 (0 is padding in the text-like tasks) or
  stay as they are. Only the chosen positions are predicted.
- Per-token outputs come from `Encoder.token_features`: the CLS position (pool=cls) is dropped, and the sequence is
  not resized, so the Fourier Transformer pretrains without its spectral shortening (its filters have no weights, so
  every weight the fine-tuning uses is pretrained; a shortened position is a spectral interpolation point, not a
  token to predict), then fine-tunes shortened. Mask-free mixers (FNet, linear) mix the [MASK] tokens like any token.
- Retrieval's dual encoder pretrains on both documents of each pair (a batch of 2B texts).
- Files: `<run dir>/pretrain/checkpoints/` (step<N>.ckpt every `checkpoint_every` steps, the newest two kept, and
  last.ckpt), and `pretrain/finished.json` once the stage is complete. `resume=auto` resumes an unfinished
  pretraining from its newest checkpoint (exactly, like fine-tuning) and skips a finished one.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from omegaconf.errors import InterpolationKeyError
from torch import nn

from lra.atomic import write_text
from lra.errors import LRAError
from lra.models import build_model
from lra.models.encoder import Encoder
from lra.models.init import initialise
from lra.run.callbacks import Throughput
from lra.run.checkpoints import readable
from lra.run.optim import OptimSettings, adamw
from lra.run.results import RESUMABLE, UNHASHED, digest
from lra.run.schedules import SCHEDULES
from lra.run.stage import Stage, training_data

OBJECTIVES = ("mlm",)
IGNORE = -100  # the target of every position that is not predicted (F.cross_entropy's ignore_index)
TIMING = ("steps_per_s", "wall_s")  # the stage's speed and wall time, in finished.json and results.json's `pretrain`
FINISHED = "finished.json"  # in <run dir>/pretrain/: the stage is complete; its record and final checkpoint
WINDOW = 50  # the final pretraining loss and accuracy are means over the last WINDOW steps


def mask_tokens(
    ids: torch.Tensor, real: torch.Tensor, rate: float, mask_id: int, split: Sequence[float] = (0.8, 0.1, 0.1)
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) for masked-token prediction, drawn from torch's global RNG (so a resumed run redraws the
    same masks): a `rate` share of the `real` positions is chosen, each replaced by `mask_id`, by a random id in
    1..mask_id-1, or kept, in the proportions `split`; targets hold the original id there and IGNORE elsewhere."""
    chosen = real & (torch.rand(ids.shape, device=ids.device) < rate)
    roll = torch.rand(ids.shape, device=ids.device)
    to_mask = chosen & (roll < split[0])
    to_random = chosen & (roll >= split[0]) & (roll < split[0] + split[1])
    random_ids = torch.randint(1, max(mask_id, 2), ids.shape, device=ids.device)
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), torch.where(to_random, random_ids, ids))
    return inputs, torch.where(chosen, ids, torch.full_like(ids, IGNORE))


def documents(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's texts and masks; Retrieval's pairs give both documents (2B texts), labels unused."""
    if "input_ids_2" not in batch:
        return batch["input_ids"], batch["mask"]
    return torch.cat([batch["input_ids"], batch["input_ids_2"]]), torch.cat([batch["mask"], batch["mask_2"]])


class MaskedLM(pl.LightningModule):
    """The pretraining stage: the task's encoder and a linear head over the task's ids predict the chosen tokens.

    Logs `pretrain/loss` (cross-entropy over the chosen positions) and `pretrain/acc` (their accuracy)."""

    def __init__(
        self,
        encoder: Encoder,
        vocab_size: int,
        mask_rate: float,
        split: list[float],
        optim: OptimSettings,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            {"vocab_size": vocab_size, "mask_rate": mask_rate, "split": split, **optim.hparams()}
        )
        self.optim = optim
        self.encoder = encoder
        self.head = nn.Linear(encoder.embed.tokens.embedding_dim, vocab_size)
        # The last WINDOW steps' loss and accuracy, a ring indexed by step: saved with the weights, no host sync.
        self.register_buffer("recent", torch.full((2, WINDOW), math.nan))

    def corrupt(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs, mask, targets) of the batch's texts: a fresh draw of the chosen positions."""
        ids, mask = documents(batch)
        real = mask & (ids > 0) if self.encoder.zero_is_pad else mask
        inputs, targets = mask_tokens(ids, real, self.hparams.mask_rate, self.hparams.vocab_size, self.hparams.split)
        return inputs, mask, targets

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cross-entropy and accuracy over the chosen positions, and whether there were any.

        A batch with no chosen token (only on tiny inputs) has loss 0 and no gradient. Every position goes through
        the head and the unchosen ones are ignored: boolean indexing would wait for the device every step."""
        inputs, mask, targets = self.corrupt(batch)
        chosen = targets != IGNORE
        logits = self.head(self.encoder.token_features(inputs, mask)).float()  # [B, L, V]
        count = chosen.sum().clamp(min=1)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="sum") / count
        acc = ((logits.argmax(-1) == targets) & chosen).sum() / count
        return loss, acc, chosen.any()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, acc, any_chosen = self.loss(batch)
        metrics = torch.where(any_chosen, torch.stack([loss.detach(), acc]), math.nan)  # NaN: no value this step
        self.recent[:, self.global_step % WINDOW] = metrics
        size = batch["input_ids"].shape[0]
        self.log("pretrain/loss", metrics[0], on_step=True, on_epoch=False, prog_bar=True, batch_size=size)
        self.log("pretrain/acc", metrics[1], on_step=True, on_epoch=False, prog_bar=True, batch_size=size)
        return loss

    def configure_optimizers(self):
        return adamw(self, self.optim, name="pretrain/lr")

    def record(self) -> dict:
        """results.json's `pretrain`: the objective, steps taken, mask rate, final loss and accuracy."""
        loss, acc = (float(v) for v in torch.nanmean(self.recent, dim=1))
        return {
            "objective": "mlm", "steps": int(self.global_step), "mask_rate": float(self.hparams.mask_rate),
            "loss": None if math.isnan(loss) else loss, "acc": None if math.isnan(acc) else acc,
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["pretrain"] = self.record()  # what `pretrain.from` reads back


@dataclass(frozen=True)
class Pretrained:
    """What the fine-tuning takes from the pretraining stage."""

    encoder: dict[str, torch.Tensor]  # the encoder's state_dict
    record: dict  # results.json's `pretrain`

    def load_into(self, encoder: Encoder) -> None:
        """Copy the pretrained weights into the fine-tuning's encoder; a different model or task is one line."""
        try:
            encoder.load_state_dict(self.encoder)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[-1].strip()
            raise LRAError(
                f"the pretrained encoder does not fit this model ({first}); pretrain with the same model.* and task.* "
                "settings (pretrain.from: the run that made it)"
            ) from None


def check_pretrain(cfg: DictConfig) -> None:
    """One line naming the key for a bad `pretrain.*` value, before any data is read."""
    spec = cfg.pretrain
    if spec.objective not in OBJECTIVES:
        raise LRAError(
            f"pretrain.objective={spec.objective!r} is not an objective; use one of: {', '.join(OBJECTIVES)}"
        )
    try:
        rate = spec.mask_rate
    except InterpolationKeyError:
        raise LRAError(
            f"pretrain.mask_rate: pretrain.rates has no rate for task {cfg.task.name!r}; pass pretrain.mask_rate=<rate>"
        ) from None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < 1:
        raise LRAError(f"pretrain.mask_rate={rate} must be in (0, 1): the share of real tokens predicted")
    for key, low in (("steps", 1), ("warmup_steps", 0)):
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise LRAError(f"pretrain.{key}={value} must be an integer of at least {low}")
    split = list(spec.split)
    if len(split) != 3 or any(not isinstance(v, int | float) or v < 0 for v in split) or abs(sum(split) - 1) > 1e-6:
        raise LRAError(f"pretrain.split={split} must be three shares summing to 1: [MASK], random token, kept")
    if not isinstance(spec.lr, int | float) or spec.lr <= 0:
        raise LRAError(f"pretrain.lr={spec.lr} must be positive")
    if not isinstance(spec.weight_decay, int | float) or spec.weight_decay < 0:
        raise LRAError(f"pretrain.weight_decay={spec.weight_decay} must be non-negative")
    if spec.schedule not in SCHEDULES:
        raise LRAError(f"pretrain.schedule={spec.schedule!r} is not a schedule; use one of: {', '.join(SCHEDULES)}")


def pretrain_fingerprint(cfg: DictConfig) -> str:
    """The run's identity for the pretraining stage: like the fine-tuning's, but `pretrain.steps` may change on
    resume (as trainer.max_steps may)."""
    return digest(cfg, tuple(k for k in UNHASHED if k != "seed") + RESUMABLE + ("pretrain.steps",))


def load_pretrained(path: Path, key: str) -> Pretrained:
    """The encoder and record of a pretraining checkpoint; `key` is the config key that named it (for errors)."""
    problem = readable(path)
    if problem is not None:
        raise LRAError(f"{key}={path} cannot be loaded ({problem})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state.get("pretrain"), dict):
        raise LRAError(
            f"{key}={path} is not a pretraining checkpoint (no pretrain record); "
            "name one under <run dir>/pretrain/checkpoints/"
        )
    prefix = "encoder."
    encoder = {k[len(prefix):]: v for k, v in state["state_dict"].items() if k.startswith(prefix)}
    return Pretrained(encoder, dict(state["pretrain"]))


def self_pretrain(cfg: DictConfig, output_dir: Path, resuming: bool) -> Pretrained | None:
    """The pretraining stage of a run: none without `pretrain`; the checkpoint `pretrain.from` names; a finished
    stage of this run directory when resuming; else pretraining now (resumed from its newest checkpoint if any)."""
    if cfg.get("pretrain") is None:
        return None
    check_pretrain(cfg)
    source = cfg.pretrain.get("from")
    if source:
        pretrained = load_pretrained(Path(source), "pretrain.from")
        return Pretrained(pretrained.encoder, {**pretrained.record, "from": str(source)})
    directory = output_dir / "pretrain"
    fingerprint = pretrain_fingerprint(cfg)
    finished = directory / FINISHED
    if resuming and finished.is_file():
        done = json.loads(finished.read_text())
        if done.get("fingerprint") != fingerprint:
            raise LRAError(
                f"{finished} was written by a different configuration (fingerprint {done.get('fingerprint')}, this "
                f"run {fingerprint}); resume with the original overrides or use a new hydra.run.dir"
            )
        if done["steps"] != cfg.pretrain.steps:
            raise LRAError(
                f"the pretraining in {directory} finished after {done['steps']} steps, but pretrain.steps="
                f"{cfg.pretrain.steps}; pass pretrain.steps={done['steps']} or use a new hydra.run.dir"
            )
        checkpoint = directory / done["checkpoint"]
        print(f"pretraining finished before: fine-tuning from {checkpoint}")
        pretrained = load_pretrained(checkpoint, "pretrain/finished.json's checkpoint")
        timing = {key: done[key] for key in TIMING if key in done}
        return Pretrained(pretrained.encoder, {**pretrained.record, **timing, "from": None})
    return train_mlm(cfg, directory, resuming, fingerprint)


def train_mlm(cfg: DictConfig, directory: Path, resuming: bool, fingerprint: str) -> Pretrained:
    """Pretrain for `pretrain.steps` with checkpoints, pre-emption and numeric guards as the fine-tuning has them."""
    spec = cfg.pretrain
    pl.seed_everything(cfg.seed, workers=True)
    encoder = build_model(cfg.model, cfg.task, mask_token=True).encoder  # first: a bad model option reads no data
    optim = OptimSettings.from_config(
        cfg.optim, spec.steps, lr=spec.lr, weight_decay=spec.weight_decay, schedule=spec.schedule,
        warmup_steps=spec.warmup_steps,
    )
    module = MaskedLM(encoder, cfg.task.vocab_size, spec.mask_rate, list(spec.split), optim)
    initialise(module.head, cfg.model.init)
    datamodule = training_data(cfg)
    throughput = Throughput()
    stage = Stage(
        cfg, directory, fingerprint, "last" if cfg.ckpt_path == "last" else None, "auto" if resuming else None,
        run_dir=directory.parent, callbacks=[throughput], max_steps=spec.steps, limit_val_batches=0,
        num_sanity_val_steps=0,
    )

    def finish(trainer: pl.Trainer) -> dict:
        record = {**module.record(), "steps_per_s": throughput.steps_per_s(), "wall_s": throughput.wall_s()}
        if trainer.is_global_zero:
            done = {**record, "checkpoint": str(stage.last.relative_to(directory)), "fingerprint": fingerprint}
            write_text(directory / FINISHED, json.dumps(done, indent=2) + "\n")
        return record

    record = stage.run(module, datamodule, finish)
    return Pretrained(copy.deepcopy(module.encoder.state_dict()), {**record, "from": None})
