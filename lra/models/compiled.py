"""`model.compile`: torch.compile for the encoder's blocks, where nearly all of a model's time goes.

Each block is compiled on its own rather than the encoder as a whole: blocks of one mixer share their compiled code
(parameters are graph inputs), so a 6-layer model compiles one graph per mixer kind, and every way of calling the
encoder (fine-tuning's pooled `forward`, self-pretraining's `token_features`) runs compiled. Mixers keep their
graphs whole and guard only on what does not change from step to step (tests/test_compile.py checks every mixer);
the first training step, the first validation (eval mode) and a smaller last batch compile, later steps do not.
"""

from __future__ import annotations

from torch import nn


def compile_blocks(encoder: nn.Module) -> None:
    """Compile every block of `encoder` in place (parameter names and checkpoints unchanged)."""
    for block in encoder.blocks:
        block.compile()
