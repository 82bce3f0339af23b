"""lra.models.precision.no_autocast: float32 maths inside a mixed-precision step, on any device type."""

from __future__ import annotations

import torch

from lra.models.precision import no_autocast


def test_no_autocast_computes_in_the_input_dtype_under_autocast():
    x = torch.randn(4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (x @ x).dtype == torch.bfloat16
        with no_autocast(x):
            assert (x @ x).dtype == torch.float32
        assert (x @ x).dtype == torch.bfloat16, "autocast is back on after the block"


def test_no_autocast_where_the_device_type_has_no_autocast():
    x = torch.empty(2, 2, device="meta")  # torch.autocast("meta") raises: the helper must not call it
    with no_autocast(x):
        assert (x @ x).dtype == torch.float32
