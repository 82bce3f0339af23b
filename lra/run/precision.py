"""`matmul_precision`: how float32 matrix products may run (torch.set_float32_matmul_precision).

`highest` (the default) keeps full float32, the numbers every published run here was made with. `high` lets GPUs
with TF32 (Ampere and later) run the float32 products in TF32, about 8x the float32 rate: the mixed-precision
models' float32 islands (the kernel mixers' feature maps, the SSM cores, Linformer's attention, FNet's DFT by
matmul) and every product of a `32-true` run. No effect on CPU.
"""

from __future__ import annotations

import torch

from lra.errors import LRAError

PRECISIONS = ("highest", "high", "medium")


def set_matmul_precision(value: str) -> None:
    if value not in PRECISIONS:
        raise LRAError(f"matmul_precision={value!r} is not an option; use one of: {', '.join(PRECISIONS)}")
    torch.set_float32_matmul_precision(value)
