"""Where model code leaves mixed precision: FFTs, complex scans, kernel feature maps and softmax logits that lose
too much in half precision run in float32 (or the input's float64) with autocast off."""

from __future__ import annotations

import contextlib

import torch


def no_autocast(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast off for `x`'s device type; nothing to turn off where that device type has no autocast."""
    device_type = x.device.type
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()
