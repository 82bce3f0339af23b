"""What every benchmark records beside its numbers: the machine and versions, JSON written whole, table cells."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import torch

from lra.atomic import write_text
from lra.hardware import device_name


def environment(device: torch.device) -> dict:
    return {
        "device": device.type, "device_name": device_name(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(payload, indent=2) + "\n")


def number(value, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value if value is not None else "-")
