"""Pathfinder / Path-X settings (REFERENCE.md, "Pathfinder generator") and the growth constants derived from them.

Kept apart from the drawing so that the CLI can check its arguments without compiling the growth kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from lra.errors import LRAError

# Difficulty directory name -> contour length (paddles per target snake), as in the LRA release.
DIFFICULTIES = {"curv_baseline": 6, "curv_contour_length_9": 9, "curv_contour_length_14": 14}
SIZES = (32, 128)


@dataclass(frozen=True)
class Params:
    """The generator settings of one dataset."""

    size: int
    contour_length: int
    padding: int
    margins: tuple[int, ...]
    paddle_length: int
    paddle_thickness: float
    marker_radius: float
    seed_distance: int
    antialias: int
    continuity: float
    distractor_budget: int
    snake_contrast: float
    paddle_contrast: float

    @property
    def distractor_length(self) -> int:
        return self.contour_length // 3

    @property
    def n_distractors(self) -> int:
        return self.distractor_budget // self.distractor_length


_SETTINGS = {
    32: dict(padding=1, margins=(1,), paddle_length=2, paddle_thickness=0.5, marker_radius=1.5, seed_distance=7,
             antialias=2, continuity=1.0, distractor_budget=20, snake_contrast=2.0, paddle_contrast=0.75),
    128: dict(padding=1, margins=(2, 3), paddle_length=5, paddle_thickness=1.5, marker_radius=3.0, seed_distance=20,
              antialias=2, continuity=1.8, distractor_budget=35, snake_contrast=0.9, paddle_contrast=1.0),
}


def params_for(size: int, difficulty: str) -> Params:
    """Pathfinder32 or Path-X (128) settings at a difficulty; bad values are user errors."""
    if size not in _SETTINGS:
        raise LRAError(f"--size={size} is not a Pathfinder size; use 32 (Pathfinder) or 128 (Path-X)")
    if difficulty not in DIFFICULTIES:
        known = ", ".join(DIFFICULTIES)
        raise LRAError(f"--difficulty={difficulty!r} is not a Pathfinder difficulty; use one of {known}")
    return Params(size=size, contour_length=DIFFICULTIES[difficulty], **_SETTINGS[size])


class Geometry(NamedTuple):
    """Per-image constants of growth, derived from the params and the sampled margin (a NamedTuple, so that the
    compiled growth can take it).

    Footprints (a stroke widened by `radius`) must not overlap, i.e. strokes stay `spacing = 2 * radius` apart. The
    occupancy grid has a border of `border` free pixels around the image so that a claim's window (`half` pixels
    either side of a paddle's middle) spills over without bounds checks; a stroke keeps `radius` from the centres
    of the padding pixels, i.e. its ends lie in [low, high] (the original's mask border)."""

    size: int
    length: float
    margin: float
    radius: float  # footprint half-width: the stroke's half-thickness plus the margin
    steps: np.ndarray  # candidate turns in units of `delta` (turns of weight 0 left out)
    delta: float
    continuity: float
    spacing: float
    spacing2: np.float32  # spacing ** 2, for the claim test in float32 (as the numpy version did it)
    half: int
    border: int
    side: int  # side of the occupancy grid: the image and its free border
    low: float
    high: float
    along: np.ndarray  # fractions along a candidate stroke at which it is tested, <= 0.5 px apart

    @classmethod
    def make(cls, params: Params, margin: int) -> Geometry:
        delta = 1.0 / (params.paddle_length + margin)  # one pixel of arc on the circle of candidate heads
        reach = int(math.ceil(math.pi / 2 / params.continuity / delta))  # larger turns have weight 0
        radius = params.paddle_thickness / 2 + margin
        length = float(params.paddle_length)
        spacing = 2 * radius
        half = int(math.ceil(length / 2 + spacing)) + 1
        return cls(size=params.size, length=length, margin=float(margin), radius=radius,
                   steps=np.arange(-reach, reach + 1, dtype=float), delta=delta, continuity=params.continuity,
                   spacing=spacing, spacing2=np.float32(spacing**2), half=half, border=half + 1,
                   side=params.size + 2 * (half + 1), low=params.padding - 0.5 + radius,
                   high=params.size - params.padding + 0.5 - radius,
                   along=np.linspace(0.0, 1.0, int(math.ceil(2 * length)) + 1))
