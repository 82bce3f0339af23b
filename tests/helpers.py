"""What several test files share that is not a fixture: tiny-run overrides and `python train.py` (in this process,
or as its own).

Fixtures live in conftest.py; the tiny source files in the real task formats, and a fixture maker per task
config, in task_fixtures.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from lra.run.config import CONF_DIR

ROOT = Path(__file__).resolve().parent.parent

# A model small enough for a CPU step in milliseconds; the keys every model shares.
TINY_MODEL = ["model.n_layers=2", "model.d_model=32", "model.n_heads=4", "model.d_ff=64"]

# A few CPU steps of a very small model on short sequences; the sweep tests add their own sweep dimensions.
TINY = [
    "logger=csv", "trainer.accelerator=cpu", "trainer.max_steps=4", "trainer.val_check_interval=4",
    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "task.batch_size=4",
    "task.num_workers=0", "task.max_len=32", "model.n_layers=1", "model.d_model=16", "model.n_heads=2",
    "model.d_ff=16",
]


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


def train_py(argv: list[str], monkeypatch) -> int:
    """`python train.py ARGV` in this process: Hydra's real launcher and sweeper, without a new interpreter."""
    import train

    # Imported, train.py's relative config_path would name a Python package: point Hydra at the directory.
    quiet = ["hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    monkeypatch.setattr(sys, "argv", ["train.py", f"--config-path={CONF_DIR}", *argv, *quiet])
    try:
        train.main()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
    return 0


def start(args: list[str], wandb: str = "disabled") -> subprocess.Popen:
    """`python train.py ARGS` as its own process (to be killed, signalled), its output piped; in its own process
    group, so that a test can signal it and its DataLoader workers at once, as scancel does."""
    env = {**os.environ, "WANDB_MODE": wandb, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "train.py", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
