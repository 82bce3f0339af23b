"""Fixtures only (shared helpers are in helpers.py, tiny task data in task_fixtures.py); and, before any test module
imports the package, an environment that never reaches the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["WANDB_MODE"] = "disabled"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402

from tests.task_fixtures import write_listops  # noqa: E402 - after the environment above

# Under pytest-xdist (`make test`), the workers share the cores instead of each running one thread per core.
if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture
def listops_data(tmp_path: Path) -> Path:
    """A data_dir holding a tiny `listops-1000/`."""
    write_listops(tmp_path / "data" / "listops-1000")
    return tmp_path / "data"
