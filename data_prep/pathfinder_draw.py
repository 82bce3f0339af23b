"""One Pathfinder image: two target snakes, distractors and two markers, grown on an occupancy grid and drawn.

The algorithm is Linsley et al. 2018 (the `snakes2` generator) with the LRA settings; growth is in
`pathfinder_grow.py`, drawing in `pathfinder_render.py`, settings in `pathfinder_params.py`.

Two target snakes start `seed_distance` apart near the centre and grow in turn; an attempt that reaches a dead end
is thrown away and started afresh. Most attempts die (Path-X needs a few hundred per image, since two snakes of
~140 px must fit in 128 px), so attempts run as a batch in lockstep and the first survivor in index order is kept:
the same distribution as retrying one attempt at a time. Distractor snakes start anywhere free (a few tries each,
then skipped). Markers sit on the first paddle's tail and the last paddle's head: label 1 on both ends of one
target, label 0 on one end of each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.pathfinder_grow import free_pixels, grow_batch, new_owner, seed_pixels
from data_prep.pathfinder_params import DIFFICULTIES, SIZES, Geometry, Params, params_for
from data_prep.pathfinder_render import render
from lra.errors import LRAError

__all__ = ["DIFFICULTIES", "SIZES", "Geometry", "Params", "Sample", "Snake", "make_sample", "params_for"]

FIRST_BATCH, MAX_BATCH = 4, 64  # target attempts per round: doubles after each round without a survivor
MAX_TARGET_ATTEMPTS = 200_000  # give up (a bug or impossible settings) after this many target attempts
DISTRACTOR_TRIES = 5  # the original: one try + 4 retries per distractor, then the distractor is skipped
MIN_FREE_FRACTION = 0.01  # stop adding distractors when less of the image than this is free (the original's rule)


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




def grow_targets(params: Params, geo: Geometry, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """Two full-length snakes whose first tails are `seed_distance` apart, the first in the centre region (the
    original keeps it 2 * seed_distance from the edges). Returns the winning attempt's grid and chains."""
    lo, hi = 2 * params.seed_distance, params.size - 2 * params.seed_distance
    centre = np.zeros((params.size, params.size), bool)
    centre[lo:hi, lo:hi] = True
    centre_pixels = np.flatnonzero(centre)
    batch, tried = FIRST_BATCH, 0
    while tried < MAX_TARGET_ATTEMPTS:
        owner = new_owner(geo, batch)
        seeds = seed_pixels(rng, centre_pixels, batch)
        alive, paddles = grow_batch(owner, rng, seeds, geo, 2, params.contour_length, first_id=0,
                                    seed_distance=params.seed_distance)
        if alive.any():
            winner = int(np.argmax(alive))
            return owner[winner].copy(), [paddles[winner, 0], paddles[winner, 1]]
        tried += batch
        batch = min(2 * batch, MAX_BATCH)
    raise RuntimeError(f"no two target snakes of {params.contour_length} paddles fit in {tried} attempts")


def add_distractors(params: Params, geo: Geometry, owner: np.ndarray, rng: np.random.Generator,
                    first_id: int) -> list[np.ndarray]:
    """Up to `n_distractors` short snakes anywhere free in `owner [side, side]` (claimed in place); all tries of one
    distractor run as one batch and the first that fits is kept (the original tries one after another); a
    distractor with no fitting try is skipped."""
    chains: list[np.ndarray] = []
    for _ in range(params.n_distractors):
        free = free_pixels(owner, geo)
        if len(free) < MIN_FREE_FRACTION * params.size**2:
            break
        tries = np.repeat(owner[None], DISTRACTOR_TRIES, axis=0)
        seeds = seed_pixels(rng, free, DISTRACTOR_TRIES)
        alive, paddles = grow_batch(tries, rng, seeds, geo, 1, params.distractor_length, first_id)
        if alive.any():
            winner = int(np.argmax(alive))
            owner[:] = tries[winner]
            chains.append(paddles[winner, 0])
            first_id += params.distractor_length
    return chains


def make_sample(size: int, difficulty: str, label: int, rng: np.random.Generator) -> Sample:
    """One image of the given label, drawn from `rng` alone (so a seeded generator fixes every pixel)."""
    params = params_for(size, difficulty)
    if label not in (0, 1):
        raise LRAError(f"label={label!r} must be 0 or 1")
    margin = int(params.margins[rng.integers(len(params.margins))])
    geo = Geometry.make(params, margin)
    owner, targets = grow_targets(params, geo, rng)
    distractors = add_distractors(params, geo, owner, rng, first_id=2 * params.contour_length)

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
