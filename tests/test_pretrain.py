"""Self-pretraining (lra.run.pretrain, pretrain=mlm): the masking, the masked-token stage learning, the fine-tuning
starting from its encoder, resume and reuse of each stage, and every model (and the dual encoder) through both."""

from __future__ import annotations

import json
import math
import re
import signal
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

import lra.run.train
from lra.errors import LRAError
from lra.models import build_model
from lra.run.config import CONF_DIR, choices, compose_train
from lra.run.optim import OptimSettings
from lra.run.preemption import Preemption
from lra.run.pretrain import FINISHED, IGNORE, TIMING, MaskedLM, mask_tokens
from lra.run.task import LRATask
from lra.run.train import run
from tests.helpers import TINY_MODEL, start, tiny_run_overrides
from tests.task_fixtures import MAKERS, write_listops

PRETRAIN = ["pretrain=mlm", "pretrain.steps=3"]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these models are tiny, and on a shared 2-core machine more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_cfg(*overrides: str):
    return compose_train([*TINY_MODEL, "task.max_len=32", "output_dir=/unused", *overrides])


def mlm(cfg, **options) -> MaskedLM:
    encoder = build_model(cfg.model, cfg.task, mask_token=True).encoder
    settings = {"lr": 1e-3, "weight_decay": 0.0, "schedule": "constant", "warmup_steps": 1, "total_steps": 100}
    masking = {"mask_rate": 0.15, "split": [0.8, 0.1, 0.1]}
    masking.update((k, options.pop(k)) for k in list(options) if k in masking)
    return MaskedLM(encoder, cfg.task.vocab_size, optim=OptimSettings(**{**settings, **options}), **masking)


# --- the masking ---------------------------------------------------------------------------------------------------
def test_masking_rates_padding_and_targets():
    torch.manual_seed(0)
    vocab, rate = 257, 0.15
    ids = torch.randint(1, vocab, (256, 1024))
    real = torch.arange(1024)[None, :] < torch.randint(1, 1025, (256, 1))
    inputs, targets = mask_tokens(ids, real, rate, mask_id=vocab)
    chosen = targets != IGNORE
    assert abs(chosen.sum() / real.sum() - rate) < 0.005
    assert not (chosen & ~real).any(), "padding is never chosen"
    assert torch.equal(inputs[~chosen], ids[~chosen]), "only chosen positions change (padding never)"
    assert torch.equal(targets[chosen], ids[chosen]), "targets: the original ids, at the chosen positions only"
    masked = inputs[chosen] == vocab
    kept = inputs[chosen] == ids[chosen]
    random = ~masked & ~kept
    assert abs(masked.float().mean() - 0.8) < 0.015
    assert abs(kept.float().mean() - 0.1 - 0.1 / 255) < 0.01  # a random id equal to the original looks kept
    assert abs(random.float().mean() - 0.1 * 254 / 255) < 0.01
    replaced = inputs[chosen][random]
    assert replaced.min() >= 1 and replaced.max() < vocab, "random ids are real tokens: never padding nor [MASK]"


@pytest.mark.parametrize("task, rate", [
    ("listops", 0.1), ("text", 0.15), ("retrieval", 0.15), ("image", 0.5), ("pathfinder", 0.5), ("pathx", 0.5),
])
def test_the_mask_rate_is_the_papers_per_task(task, rate):
    assert compose_train([f"task={task}", "pretrain=mlm", "output_dir=/unused"]).pretrain.mask_rate == rate


def test_every_task_config_has_a_mask_rate():
    rates = compose_train(["pretrain=mlm", "output_dir=/unused"]).pretrain.rates
    assert set(rates) == set(choices(CONF_DIR, "task"))


def test_zero_is_pad_tokens_are_never_chosen():
    module = mlm(tiny_cfg("model=transformer", "model.zero_is_pad=true"), mask_rate=0.9)
    ids = torch.randint(0, 3, (64, 32))
    _, _, targets = module.corrupt({"input_ids": ids, "mask": torch.ones_like(ids, dtype=torch.bool)})
    assert (targets != IGNORE).any() and not ((targets != IGNORE) & (ids == 0)).any()


def test_retrieval_pretrains_on_both_documents():
    module = mlm(tiny_cfg("task=retrieval", "model=transformer", "task.max_len=16"), mask_rate=0.99, split=[0, 0, 1])
    first, second = torch.randint(1, 200, (3, 16)), torch.randint(1, 200, (3, 16))
    ones = torch.ones(3, 16, dtype=torch.bool)
    batch = {"input_ids": first, "mask": ones, "input_ids_2": second, "mask_2": ones, "label": torch.zeros(3)}
    inputs, mask, targets = module.corrupt(batch)
    assert inputs.shape == mask.shape == targets.shape == (6, 16)
    chosen = targets != IGNORE
    assert torch.equal(targets[chosen], torch.cat([first, second])[chosen])


# --- what the encoder gives the head -------------------------------------------------------------------------------
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_token_features_are_one_per_token_without_cls(pool):
    cfg = tiny_cfg("model=transformer", f"model.pool={pool}")
    encoder = build_model(cfg.model, cfg.task).eval().encoder
    ids, mask = torch.randint(1, 17, (2, 32)), torch.ones(2, 32, dtype=torch.bool)
    full, _ = encoder.features(ids, mask)
    assert full.shape[1] == 32 + (pool == "cls")
    assert torch.equal(encoder.token_features(ids, mask), full[:, 1:] if pool == "cls" else full)


def test_fourier_transformer_pretrains_unshortened_and_fine_tunes_shortened():
    cfg = tiny_cfg("model=fourier_transformer", "model.n_layers=3", "model.pool=cls")
    encoder = build_model(cfg.model, cfg.task, mask_token=True).encoder
    ids, mask = torch.randint(1, 17, (2, 32)), torch.ones(2, 32, dtype=torch.bool)
    assert encoder.token_features(ids, mask).shape == (2, 32, 32), "a prediction at every token's own position"
    assert encoder.features(ids, mask)[0].shape == (2, 1 + 8, 32), "fine-tuning: CLS + 32 tokens halved twice"


# --- the stage learns ----------------------------------------------------------------------------------------------
def test_pretraining_loss_decreases_on_a_learnable_sequence_set(tmp_path):
    """Each text repeats one token of its own: a masked token is any of its neighbours."""
    pl.seed_everything(0)
    module = mlm(tiny_cfg("model=transformer", "model.dropout=0", "model.attn_dropout=0"), lr=3e-3)
    ids = torch.randint(1, 17, (32, 1)).repeat(1, 32)
    rows = [{"input_ids": row, "mask": torch.ones(32, dtype=torch.bool), "label": 0} for row in ids]
    probe = {"input_ids": ids, "mask": torch.ones_like(ids, dtype=torch.bool)}

    def probe_loss() -> float:
        torch.manual_seed(1)  # the same chosen positions every time
        with torch.no_grad():
            loss = float(module.eval().loss(probe)[0])
        module.train()
        return loss

    before = probe_loss()
    trainer = pl.Trainer(
        max_steps=150, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )
    trainer.fit(module, DataLoader(rows, batch_size=16, shuffle=True))
    after = probe_loss()
    assert before > 2.0 and after < 0.1 * before, (before, after)
    assert module.record()["loss"] < 0.2 * before, "the recorded final loss: the last steps' mean"


# --- both stages in one run ----------------------------------------------------------------------------------------
@pytest.fixture
def fine_tune_starts(monkeypatch) -> list[dict]:
    """The fine-tuning model's weights when its training starts (after any checkpoint is restored)."""
    starts = []

    class Spy(LRATask):
        def on_train_start(self) -> None:
            starts.append({k: v.clone() for k, v in self.model.state_dict().items()})

    monkeypatch.setattr(lra.run.train, "LRATask", Spy)
    return starts


def encoder_of(checkpoint: Path) -> dict:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("encoder.")}


def test_fine_tuning_starts_from_the_pretrained_encoder_with_a_fresh_head(listops_data, tmp_path, fine_tune_starts):
    out = tmp_path / "run"
    cfg = compose_train(["model=transformer", *PRETRAIN, *tiny_run_overrides(listops_data, out), "task.max_len=32",
                         "trainer.log_every_n_steps=1"])
    run(cfg)
    start = fine_tune_starts[0]
    pretrained = encoder_of(out / "pretrain" / "checkpoints" / "last.ckpt")
    assert pretrained and all(torch.equal(start[k], v) for k, v in pretrained.items())
    assert set(pretrained) == {k for k in start if k.startswith("encoder.")}
    pl.seed_everything(cfg.seed)
    scratch = build_model(cfg.model, cfg.task, mask_token=True).state_dict()
    assert any(not torch.equal(scratch[k], v) for k, v in pretrained.items()), "pretraining changed the encoder"
    heads = [k for k in start if k.startswith("head.")]
    assert heads and all(torch.equal(start[k], scratch[k]) for k in heads), "the head is freshly initialised"

    results = json.loads((out / "results.json").read_text())
    record = results["pretrain"]
    assert {k: record[k] for k in ("objective", "steps", "mask_rate", "from")} == {
        "objective": "mlm", "steps": 3, "mask_rate": 0.1, "from": None
    }
    assert math.isfinite(record["loss"]) and 0 <= record["acc"] <= 1 and record["wall_s"] > 0
    assert results["model"] == "transformer" and results["step"] == 4
    metrics = (out / "pretrain" / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"pretrain/loss", "pretrain/acc", "pretrain/lr"} <= set(metrics)


def test_pretrain_from_reuses_an_earlier_pretraining(listops_data, tmp_path, fine_tune_starts):
    first = tmp_path / "first"
    run(compose_train(["model=transformer", *PRETRAIN, *tiny_run_overrides(listops_data, first), "task.max_len=32"]))
    checkpoint = first / "pretrain" / "checkpoints" / "last.ckpt"
    second = tmp_path / "second"
    run(compose_train(["model=transformer", "pretrain=mlm", f"pretrain.from={checkpoint}",
                       *tiny_run_overrides(listops_data, second), "task.max_len=32"]))
    assert not (second / "pretrain").exists(), "no second pretraining"
    assert all(torch.equal(fine_tune_starts[1][k], v) for k, v in encoder_of(checkpoint).items())
    record = json.loads((second / "results.json").read_text())["pretrain"]
    assert record["from"] == str(checkpoint) and record["steps"] == 3

    def from_(path: Path, *more: str) -> None:
        run(compose_train(["model=transformer", "pretrain=mlm", f"pretrain.from={path}",
                           *tiny_run_overrides(listops_data, tmp_path / "third"), "task.max_len=32", *more]))

    with pytest.raises(LRAError, match=r"^pretrain.from=.*last.ckpt is not a pretraining checkpoint \(no pretrain "):
        from_(first / "checkpoints" / "last.ckpt")
    with pytest.raises(LRAError, match=r"^the pretrained encoder does not fit this model \(.*\); pretrain with the "):
        from_(checkpoint, "model.d_ff=48")


def test_resume_skips_a_finished_pretraining_and_a_reused_directory_is_refused(listops_data, tmp_path, capsys):
    out = tmp_path / "run"
    overrides = ["model=transformer", *PRETRAIN, *tiny_run_overrides(listops_data, out), "task.max_len=32"]
    run(compose_train(overrides))
    before = json.loads((out / "results.json").read_text())["pretrain"]
    with pytest.raises(LRAError, match=r"pretrain/checkpoints already holds checkpoints .*; pass resume=auto"):
        run(compose_train(overrides))
    run(compose_train([*overrides, "trainer.max_steps=6", "resume=auto"]))
    assert f"pretraining finished before: fine-tuning from {out / 'pretrain' / 'checkpoints' / 'last.ckpt'}" in (
        capsys.readouterr().out
    )
    results = json.loads((out / "results.json").read_text())
    assert results["step"] == 6 and results["pretrain"] == before
    with pytest.raises(LRAError, match=r"finished.json was written by a different configuration"):
        run(compose_train([*overrides, "pretrain.mask_rate=0.3", "resume=auto"]))


def test_bad_pretrain_settings_are_one_line_before_any_data(tmp_path):
    base = [*tiny_run_overrides(tmp_path / "no-data", tmp_path / "run"), "pretrain=mlm"]
    with pytest.raises(LRAError, match=r"^pretrain.mask_rate=1.5 must be in \(0, 1\)"):
        run(compose_train([*base, "pretrain.mask_rate=1.5"]))
    with pytest.raises(LRAError, match=r"^pretrain.split=\[0.5, 0.1, 0.1\] must be three shares summing to 1"):
        run(compose_train([*base, "pretrain.split=[0.5,0.1,0.1]"]))
    with pytest.raises(LRAError, match=r"^pretrain.mask_rate: pretrain.rates has no rate for task 'mine'; pass "):
        run(compose_train([*base, "task.name=mine"]))


def test_preemption_during_pretraining_names_the_run_directory(tmp_path):
    stop = Preemption(tmp_path / "pretrain" / "checkpoints" / "last.ckpt", requeue=False, run_dir=tmp_path)
    stop.signum, stop.saved_at = signal.SIGTERM, 5
    assert str(stop.stopped()).endswith(f"plus hydra.run.dir={tmp_path} resume=auto")


# --- every model, the dual encoder ---------------------------------------------------------------------------------
@pytest.mark.parametrize("model", choices(CONF_DIR, "model"))
def test_every_model_pretrains_and_fine_tunes(listops_data, tmp_path, model):
    out = tmp_path / "run"
    run(compose_train([f"model={model}", *PRETRAIN, *tiny_run_overrides(listops_data, out, steps=2),
                       "task.max_len=32", "pretrain.mask_rate=0.3"]))
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == model and results["step"] == 2
    assert results["pretrain"]["steps"] == 3 and math.isfinite(results["pretrain"]["loss"])
    assert (out / "pretrain" / FINISHED).is_file()


def test_retrieval_runs_both_stages(tmp_path):
    data = tmp_path / "data"
    extra = MAKERS["retrieval"](data)
    out = tmp_path / "run"
    run(compose_train(["task=retrieval", "model=transformer", *PRETRAIN, *tiny_run_overrides(data, out), *extra]))
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "retrieval" and results["pretrain"]["mask_rate"] == 0.15


# --- exact resume in each stage (real processes, SIGKILL) ----------------------------------------------------------
def spt_args(data: Path, out: Path) -> list[str]:
    """Both stages with dropout and periodic checkpoints, learning rates large enough that any drift would show."""
    return [
        *tiny_run_overrides(data, out, steps=40), "trainer.val_check_interval=20", "checkpoint_every=10",
        "trainer.deterministic=true", "task.max_len=32", "task.batch_size=12", "model.dropout=0.1",
        "pretrain=mlm", "pretrain.steps=60", "pretrain.lr=0.003", "pretrain.schedule=constant",
        "pretrain.warmup_steps=1",
    ]


def final_weights(out: Path) -> tuple[dict, dict, dict]:
    results = json.loads((out / "results.json").read_text())
    load = lambda path: torch.load(path, map_location="cpu", weights_only=True)["state_dict"]  # noqa: E731
    return results, load(out / "pretrain" / "checkpoints" / "last.ckpt"), load(out / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> tuple[Path, tuple[dict, dict, dict]]:
    root = tmp_path_factory.mktemp("spt")
    data = write_listops(root / "data" / "listops-1000", sizes=(("train", 100), ("val", 24), ("test", 24))).parent
    proc = start(spt_args(data, root / "straight"))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return data, final_weights(root / "straight")


@pytest.mark.parametrize("stage", ["pretrain", "fine-tune"])
def test_sigkill_in_each_stage_then_resume_equals_the_uninterrupted_run(straight, tmp_path, stage):
    data, (expected, expected_pretrained, expected_weights) = straight
    out = tmp_path / "killed"
    proc = start(spt_args(data, out))
    directory = out / "pretrain" / "checkpoints" if stage == "pretrain" else out / "checkpoints"
    while not list(directory.glob("step*.ckpt")):
        assert proc.poll() is None, f"run ended before its first {stage} checkpoint: {proc.communicate()[1][-2000:]}"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "pretrain" / FINISHED).exists() == (stage == "fine-tune"), f"killed outside the {stage} stage"
    assert not (out / "results.json").exists()

    resumed = start([*spt_args(data, out), "resume=auto"])
    stdout, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert ("resuming from" in stdout) and (("pretraining finished before" in stdout) == (stage == "fine-tune"))
    results, pretrained, weights = final_weights(out)
    for key in ("best_val_acc", "test_acc", "test_acc_last", "step", "config_hash"):
        assert results[key] == expected[key], key
    untimed = lambda record: {k: v for k, v in record.items() if k not in TIMING}  # noqa: E731
    assert untimed(results["pretrain"]) == untimed(expected["pretrain"])
    assert results["pretrain"]["wall_s"] > 0, "the pretraining's wall time survives its resume"
    for name, tensor in expected_pretrained.items():
        assert torch.allclose(pretrained[name], tensor, atol=1e-6), f"pretraining: {name}"
    for name, tensor in expected_weights.items():
        assert torch.allclose(weights[name], tensor, atol=1e-6), f"fine-tuning: {name}"


def test_both_stages_log_to_the_runs_one_wandb_run(listops_data, tmp_path):
    """Its own process: wandb leaves its service's address in the environment of the process that used it."""
    out = tmp_path / "run"
    proc = start(["model=transformer", *PRETRAIN, *tiny_run_overrides(listops_data, out, steps=2), "task.max_len=32",
                  "logger=wandb", "trainer.log_every_n_steps=1"], wandb="offline")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    sessions = sorted((out / "wandb").glob("offline-run-*"))
    assert len(sessions) == 2, sessions  # the pretraining's, then the fine-tuning's
    # offline-run-<time>-<id>, and "-1" appended when both stages start within the same second
    ids = {re.fullmatch(r"offline-run-\d{8}_\d{6}-([a-z0-9]+)(?:-\d+)?", folder.name).group(1) for folder in sessions}
    assert ids == {(out / "wandb_id").read_text().strip()}
    assert b"pretrain/loss" in next(sessions[0].glob("*.wandb")).read_bytes()
