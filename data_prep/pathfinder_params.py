"""The settings of the Pathfinder generator per image size and difficulty (docs/reference.md#pathfinder-generator)."""

from __future__ import annotations

from dataclasses import dataclass

from lra.errors import LRAError

# Difficulty directory name -> contour length (paddles per target snake), as in the LRA release.
DIFFICULTIES = {"curv_baseline": 6, "curv_contour_length_9": 9, "curv_contour_length_14": 14}
SIZES = (32, 128)


@dataclass(frozen=True)
class Params:
    """The generator settings of one dataset (docs/reference.md#pathfinder-generator)."""

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
