"""One Pathfinder image: two target snakes, distractors and two markers, and the bookkeeping that the tests read.

The algorithm is Linsley et al. 2018 (the `snakes2` generator) with the LRA settings (`pathfinder_params.py`): the
snakes are placed and grown paddle by paddle by `pathfinder_grow.py` and drawn by
`pathfinder_render.py`. Markers sit on the first paddle's tail and the last paddle's head: label 1 on both ends of
one target, label 0 on one end of each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.pathfinder_grow import place_snakes
from data_prep.pathfinder_params import DIFFICULTIES, SIZES, Geometry, Params, params_for
from data_prep.pathfinder_render import render
from lra.errors import LRAError

__all__ = ["DIFFICULTIES", "SIZES", "Geometry", "Params", "Sample", "Snake", "make_sample", "params_for"]


@dataclass
class Snake:
    """One snake's bookkeeping: paddles in chain order as (tail, head) rows, and the pixels it lights up."""

    kind: str  # "target" or "distractor"
    paddles: np.ndarray  # [n, 2, 2] float: paddle k runs from paddles[k, 0] to paddles[k, 1]
    layer: np.ndarray  # [size, size] float32: this snake alone, before the image's scaling
    scale: float  # the image's scale to 0-255

    @property
    def pixels(self) -> np.ndarray:
        """[m, 2] (row, col) of the pixels this snake alone makes nonzero in the image (only tests ask, so lazily)."""
        return np.argwhere(np.rint(self.layer * self.scale) >= 1)

    @property
    def ends(self) -> tuple[np.ndarray, np.ndarray]:
        """The two ends of the chain: the first paddle's tail and the last paddle's head."""
        return self.paddles[0, 0], self.paddles[-1, 1]


@dataclass
class Sample:
    """An image with what made it: tests check the label against this, the writer needs only image and label."""

    image: np.ndarray  # [size, size] uint8, background 0, brightest pixel 255
    label: int
    snakes: list[Snake]  # snakes[0] and snakes[1] are the targets
    markers: np.ndarray  # [2, 2] marker centres
    marker_snakes: tuple[int, int]  # the snake under each marker: marker 0 on its tail end, marker 1 on its head end
    margin: int


def make_sample(size: int, difficulty: str, label: int, rng: np.random.Generator) -> Sample:
    """One image of the given label, drawn from `rng` alone (so a seeded generator fixes every pixel)."""
    params = params_for(size, difficulty)
    if label not in (0, 1):
        raise LRAError(f"label={label!r} must be 0 or 1")
    margin = int(params.margins[rng.integers(len(params.margins))])
    geo = Geometry.make(params, margin)
    targets, distractors = place_snakes(params, geo, rng)

    # The tail end of one target, then the head end of the same target (label 1) or of the other (label 0).
    first = int(rng.integers(2))
    second = first if label == 1 else 1 - first
    markers = np.stack([targets[first][0, 0], targets[second][-1, 1]])

    chains = targets + distractors
    target_level = params.snake_contrast * params.paddle_contrast  # the original dims target paddles only
    levels = [target_level] * 2 + [params.snake_contrast] * len(distractors)
    image, layers, scale = render(params, chains, levels, markers)
    kinds = ["target"] * 2 + ["distractor"] * len(distractors)
    snakes = [Snake(kind, chain, layer, scale) for kind, chain, layer in zip(kinds, chains, layers, strict=True)]
    return Sample(image=image, label=label, snakes=snakes, markers=markers, marker_snakes=(first, second),
                  margin=margin)
