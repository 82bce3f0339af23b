"""Fixtures only (shared helpers are in helpers.py, tiny task data in task_fixtures.py); and, before any test module
imports the package, an environment that never reaches the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["WANDB_MODE"] = "disabled"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

from tests.task_fixtures import write_listops  # noqa: E402 - after the environment above


@pytest.fixture
def listops_data(tmp_path: Path) -> Path:
    """A data_dir holding a tiny `listops-1000/`."""
    write_listops(tmp_path / "data" / "listops-1000")
    return tmp_path / "data"
