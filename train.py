"""Train one LRA configuration: `python train.py task=listops model=fnet [key=value ...]`."""

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lra.errors import LRAError
from lra.run.config import CONF_DIR, check_choices
from lra.run.preemption import Preempted
from lra.run.train import run


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    if sweep:  # one W&B group per sweep, named after its directory (logger.wandb.group=NAME overrides it)
        os.environ.setdefault("WANDB_RUN_GROUP", Path(hydra_cfg.sweep.dir).name)
    try:
        return run(cfg)
    except LRAError as err:
        if sweep:  # fail this job only: Hydra's launcher records it, runs the other jobs, then exits non-zero
            print(f"error: {err}", file=sys.stderr)
            raise
        raise SystemExit(f"error: {err}") from None
    except Preempted as stop:
        print(stop, file=sys.stderr)
        raise SystemExit(128 + stop.signum) from None


if __name__ == "__main__":
    try:
        check_choices(sys.argv[1:], CONF_DIR)
    except LRAError as err:
        raise SystemExit(f"error: {err}") from None
    main()
