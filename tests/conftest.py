"""Shared fixtures: composing the real configs, tiny data in the release formats, quiet loggers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import DictConfig, open_dict

os.environ["WANDB_MODE"] = "disabled"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

from lra.config import CONF_DIR as CONF  # noqa: E402,F401 - after the environment above; tests import it from here
from lra.config import compose_train  # noqa: E402,F401 - the tests compose through it

# A model small enough for a CPU step in milliseconds; the keys every model shares.
TINY_MODEL = ["model.n_layers=2", "model.d_model=32", "model.n_heads=4", "model.d_ff=64"]


def tiny_run_overrides(data_dir: Path, output_dir: Path, steps: int = 4) -> list[str]:
    """Overrides for a few CPU steps with validation, checkpointing and no progress bar."""
    return [
        f"data_dir={data_dir}",
        f"output_dir={output_dir}",
        "logger=csv",
        "trainer.accelerator=cpu",
        f"trainer.max_steps={steps}",
        "trainer.val_check_interval=2",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "task.batch_size=4",
        "task.num_workers=0",
        *TINY_MODEL,
    ]


@pytest.fixture
def compose_cfg():
    return compose_train


def with_keys(cfg: DictConfig, **values) -> DictConfig:
    with open_dict(cfg):
        for key, value in values.items():
            cfg[key] = value
    return cfg


def listops_source(op: str, values: list) -> str:
    """Serialize one operator node the way the LRA generator does: a left-nested chain of pairs, then `]`."""
    text = f"( [{op} {values[0]} )"
    for value in values[1:]:
        text = f"( {text} {value} )"
    return f"( {text} ] )"


def write_listops(directory: Path, sizes=(("train", 64), ("val", 16), ("test", 16)), seed: int = 0) -> Path:
    """Tiny ListOps in the release format: one flat operator over 2..6 digits per row."""
    import random
    import statistics

    rng = random.Random(seed)
    evaluate = {"MIN": min, "MAX": max, "MED": lambda v: int(statistics.median(v)), "SM": lambda v: sum(v) % 10}
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in sizes:
        rows = ["Source\tTarget"]
        for _ in range(n):
            op = rng.choice(sorted(evaluate))
            values = [rng.randint(0, 9) for _ in range(rng.randint(2, 6))]
            rows.append(f"{listops_source(op, values)}\t{evaluate[op](values)}")
        (directory / f"basic_{split}.tsv").write_text("\n".join(rows) + "\n")
    return directory


@pytest.fixture
def listops_data(tmp_path: Path) -> Path:
    """A data_dir holding a tiny `listops-1000/`."""
    write_listops(tmp_path / "data" / "listops-1000")
    return tmp_path / "data"
