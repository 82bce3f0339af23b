"""One Pathfinder image: snakes grown paddle by paddle on an occupancy grid, then drawn anti-aliased.

The algorithm is Linsley et al. 2018 (the `snakes2` generator) with the LRA settings. A snake is a chain of short
straight strokes ("paddles") of length L: each paddle ends at its head, the chain bends at a pivot `margin` beyond
that head, and the next paddle runs from `margin` to `L + margin` past the pivot (so dashes are `2 * margin` apart).
Candidate directions lie on the circle of radius `L + margin` around the pivot, one pixel of arc apart, weighted by
`max(cos(min(|dtheta| * continuity, pi/2)), 0)^2` and by free space: a candidate whose footprint (the stroke widened
by the margin) touches an earlier footprint, the border padding or the outside gets weight 0. The original draws a
candidate and redraws a few times while it overlaps; testing all candidates in one numpy call samples from the same
weights conditioned on no overlap, without the redraws.

Two target snakes start `seed_distance` apart near the centre and grow in turn; an attempt that reaches a dead end
is thrown away and started afresh. Most attempts die (Path-X needs a few hundred per image, since two snakes of
~140 px must fit in 128 px), so attempts run as a batch in lockstep, one numpy call per paddle for all of them, and
the first survivor in index order is kept: the same distribution as retrying one attempt at a time. Distractor
snakes start anywhere free (a few tries each, then skipped). Markers sit on the first paddle's tail and the last
paddle's head: label 1 on both ends of one target, label 0 on one end of each. Strokes and discs are rendered at
`antialias` times the resolution, box-filtered down, combined by maximum (as the original combines its downsampled
strokes) and scaled so the brightest pixel is 255.
Coordinates are (row, col) floats in pixels; pixel (i, j) covers [i, i+1) x [j, j+1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from data_prep.pathfinder_params import Params, params_for
from lra.errors import LRAError

# Owner codes of the occupancy grid (paddle ids are >= 0).
FREE = -1
WALL = -2

SEED_TRIES = 16  # (tail, angle) candidates tested at once when seeding a snake; the first that fits is used
FIRST_BATCH, MAX_BATCH = 4, 64  # target attempts per round: doubles after each round without a survivor
MAX_TARGET_ATTEMPTS = 200_000  # give up (a bug or impossible settings) after this many target attempts
DISTRACTOR_TRIES = 5  # the original: one try + 4 retries per distractor, then the distractor is skipped
MIN_FREE_FRACTION = 0.01  # stop adding distractors when less of the image than this is free (the original's rule)


@dataclass
class Snake:
    """One snake's bookkeeping: paddles in chain order as (tail, head) rows, and the pixels it lights up."""

    kind: str  # "target" or "distractor"
    paddles: np.ndarray  # [n, 2, 2] float: paddle k runs from paddles[k, 0] to paddles[k, 1]
    pixels: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # [m, 2] (row, col), value > 0

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


@dataclass(frozen=True)
class Geometry:
    """Per-image constants of growth, derived from the params and the sampled margin."""

    size: int
    padding: int
    length: float
    margin: float
    radius: float  # footprint half-width: the stroke's half-thickness plus the margin
    steps: np.ndarray  # candidate turns in units of `delta` (turns of weight 0 left out)
    delta: float
    continuity: float

    @classmethod
    def make(cls, params: Params, margin: int) -> Geometry:
        delta = 1.0 / (params.paddle_length + margin)  # one pixel of arc on the circle of candidate heads
        reach = int(math.ceil(math.pi / 2 / params.continuity / delta))  # larger turns have weight 0
        radius = params.paddle_thickness / 2 + margin
        return cls(size=params.size, padding=params.padding, length=float(params.paddle_length),
                   margin=float(margin), radius=radius, steps=np.arange(-reach, reach + 1, dtype=float), delta=delta,
                   continuity=params.continuity)

    def turn_weights(self, turns: np.ndarray) -> np.ndarray:
        """max(cos(min(|turn| * continuity, pi/2)), 0)^2, exactly 0 from pi/2 on (cos(pi/2) is 6e-17 in floats)."""
        bend = np.abs(turns) * self.continuity
        return np.where(bend < np.pi / 2, np.cos(np.minimum(bend, np.pi / 2)) ** 2, 0.0)


def unit(angles: np.ndarray) -> np.ndarray:
    """Direction vectors (row, col) of angles measured from the +col axis towards +row."""
    return np.stack([np.sin(angles), np.cos(angles)], axis=-1)


def segment_dist2(rows: np.ndarray, cols: np.ndarray, tails: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """Squared distance from grid points to segments: rows/cols [..., I] / [..., J], tails/heads [..., 2] ->
    [..., I, J] (the leading dims index segments)."""
    ty, tx = tails[..., 0, None, None], tails[..., 1, None, None]
    dy, dx = heads[..., 0, None, None] - ty, heads[..., 1, None, None] - tx
    qy, qx = rows[..., :, None] - ty, cols[..., None, :] - tx
    t = np.clip((qy * dy + qx * dx) / np.maximum(dy * dy + dx * dx, 1e-12), 0.0, 1.0)
    return (qy - t * dy) ** 2 + (qx - t * dx) ** 2


class Occupancy:
    """Which paddle claims each pixel, for a batch of independent attempts: owner [B, G, G] (FREE if none).

    Footprints (a stroke widened by `radius`) must not overlap, i.e. strokes stay `2 * radius` apart. A paddle
    claims the pixels whose centres lie within that distance of it, so a candidate is tested by looking up points
    every half pixel along it: a few reads per candidate instead of a distance per window pixel (exact up to the
    pixel grid, as the original's raster masks are). The image border (`padding` pixels) is a straight wall, so
    testing a candidate's two ends against it is exact. A border of FREE pixels around the image lets a claim's
    window spill over without bounds checks."""

    def __init__(self, geo: Geometry, batch: int) -> None:
        self.geo = geo
        self.spacing = 2 * geo.radius
        self.half = int(math.ceil(geo.length / 2 + self.spacing)) + 1  # claim window half-width
        self.border = self.half + 1
        side = geo.size + 2 * self.border
        self.owner = np.full((batch, side, side), FREE, dtype=np.int16)
        # A stroke keeps `radius` from the centres of the padding pixels (the original's mask border).
        self.low = geo.padding - 0.5 + geo.radius
        self.high = geo.size - geo.padding + 0.5 - geo.radius
        self.along = np.linspace(0.0, 1.0, int(math.ceil(2 * geo.length)) + 1)  # sample points, <= 0.5 px apart

    def blocked(self, which: np.ndarray, tails: np.ndarray, heads: np.ndarray, ignore: int = FREE) -> np.ndarray:
        """[A, K] bool: segment (a, k) crosses the border wall or comes within `spacing` of a paddle of attempt
        which[a] other than `ignore` (the snake's previous paddle, which always does)."""
        ends = np.stack([tails, heads], axis=-2)
        out = ((ends < self.low) | (ends > self.high)).any(axis=(-2, -1))
        points = tails[..., None, :] + self.along[:, None] * (heads - tails)[..., None, :]  # [A, K, P, 2]
        cells = np.clip(np.floor(points).astype(np.int64), 0, self.geo.size - 1) + self.border
        owners = self.owner[which[:, None, None], cells[..., 0], cells[..., 1]]
        return out | ((owners != FREE) & (owners != ignore)).any(axis=-1)

    def claim(self, which: np.ndarray, tails: np.ndarray, heads: np.ndarray, paddle_id: int) -> None:
        """Give the still free pixels within `spacing` of segments [A, 2] to paddle `paddle_id` in attempts which[A]."""
        offsets = np.arange(-self.half, self.half + 1)
        centre = np.floor((tails + heads) / 2).astype(np.int64)
        rows, cols = centre[:, 0, None] + offsets, centre[:, 1, None] + offsets  # [A, S]
        f32 = np.float32
        near = segment_dist2((rows + 0.5).astype(f32), (cols + 0.5).astype(f32), tails.astype(f32),
                             heads.astype(f32)) <= f32(self.spacing**2)  # [A, S, S]
        a, i, j = np.nonzero(near)
        r, c = rows[a, i] + self.border, cols[a, j] + self.border
        free = self.owner[which[a], r, c] == FREE
        self.owner[which[a[free]], r[free], c[free]] = paddle_id

    def free_pixels(self, attempt: int) -> np.ndarray:
        """Flat indices of unclaimed pixels where a stroke may start (inside the border wall)."""
        b, s = self.border, self.geo.size
        lo, hi = int(math.ceil(self.low)), int(math.floor(self.high))
        grid = self.owner[attempt, b:b + s, b:b + s] == FREE
        inside = np.zeros_like(grid)
        inside[lo:hi, lo:hi] = True
        return np.flatnonzero(grid & inside)


def pixel_tails(rng: np.random.Generator, pixels: np.ndarray, size: int, count: int) -> np.ndarray:
    """`count` random pixel centres drawn from flat pixel indices: [count, SEED_TRIES, 2]."""
    flat = pixels[rng.integers(0, len(pixels), (count, SEED_TRIES))]
    return np.stack([flat // size, flat % size], axis=-1) + 0.5


# seed_tails(snake, live attempts, paddles so far) -> candidate tails [A, SEED_TRIES, 2]
SeedTails = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


def grow_batch(occ: Occupancy, rng: np.random.Generator, seed_tails: SeedTails, n_snakes: int, n_paddles: int,
               first_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Grow `n_snakes` snakes of `n_paddles` paddles in every attempt of `occ`, the snakes taking turns a paddle at
    a time; an attempt dies at its first dead end. Returns (alive [B], paddles [B, n_snakes, n_paddles, 2, 2]).
    Paddle k of snake j gets id first_id + k * n_snakes + j in every attempt."""
    geo, batch = occ.geo, occ.owner.shape[0]
    paddles = np.zeros((batch, n_snakes, n_paddles, 2, 2))
    pivot = np.zeros((batch, n_snakes, 2))
    angle = np.zeros((batch, n_snakes))
    live = np.arange(batch)
    for k in range(n_paddles):
        for j in range(n_snakes):
            if len(live) == 0:
                return np.zeros(batch, bool), paddles
            if k == 0:  # seed: the first candidate tail whose paddle fits, at a random angle
                tails = seed_tails(j, live, paddles)
                dirs = unit(rng.uniform(-np.pi, np.pi, tails.shape[:2]))
                heads = tails + geo.length * dirs
                good = ~occ.blocked(live, tails, heads)
                pick = np.argmax(good, axis=1)
            else:  # extend: a weighted draw among the free directions past the pivot
                turns = (geo.steps + rng.uniform(-0.5, 0.5, (len(live), 1))) * geo.delta
                dirs = unit(angle[live, j, None] + turns)
                tails = pivot[live, j, None] + geo.margin * dirs
                heads = pivot[live, j, None] + (geo.length + geo.margin) * dirs
                free = ~occ.blocked(live, tails, heads, ignore=first_id + (k - 1) * n_snakes + j)
                weights = geo.turn_weights(turns) * free
                good = weights > 0
                cum = np.cumsum(weights, axis=1)
                draw = rng.uniform(0.0, 1.0, len(live)) * cum[:, -1]
                pick = np.minimum((cum <= draw[:, None]).sum(axis=1), len(geo.steps) - 1)
            found = good[np.arange(len(live)), pick]
            live, pick, rows = live[found], pick[found], np.flatnonzero(found)
            tail, head, step = tails[rows, pick], heads[rows, pick], dirs[rows, pick]
            occ.claim(live, tail, head, first_id + k * n_snakes + j)
            paddles[live, j, k] = np.stack([tail, head], axis=1)
            pivot[live, j] = head + geo.margin * step
            angle[live, j] = np.arctan2(step[:, 0], step[:, 1])
    alive = np.zeros(batch, bool)
    alive[live] = True
    return alive, paddles


def grow_targets(params: Params, geo: Geometry, rng: np.random.Generator) -> tuple[Occupancy, list[np.ndarray]]:
    """Two full-length snakes whose first tails are `seed_distance` apart, the first in the centre region (the
    original keeps it 2 * seed_distance from the edges). Returns the winning attempt's occupancy and chains."""
    lo, hi = 2 * params.seed_distance, params.size - 2 * params.seed_distance
    centre = np.zeros((params.size, params.size), bool)
    centre[lo:hi, lo:hi] = True
    centre_pixels = np.flatnonzero(centre)

    def seed_tails(snake: int, live: np.ndarray, paddles: np.ndarray) -> np.ndarray:
        if snake == 0:
            return pixel_tails(rng, centre_pixels, params.size, len(live))
        offsets = params.seed_distance * unit(rng.uniform(-np.pi, np.pi, (len(live), SEED_TRIES)))
        return paddles[live, 0, 0, 0][:, None] + offsets

    batch, tried = FIRST_BATCH, 0
    while tried < MAX_TARGET_ATTEMPTS:
        occ = Occupancy(geo, batch)
        alive, paddles = grow_batch(occ, rng, seed_tails, 2, params.contour_length, first_id=0)
        if alive.any():
            winner = int(np.argmax(alive))
            occ.owner = occ.owner[winner:winner + 1].copy()
            return occ, [paddles[winner, 0], paddles[winner, 1]]
        tried += batch
        batch = min(2 * batch, MAX_BATCH)
    raise RuntimeError(f"no two target snakes of {params.contour_length} paddles fit in {tried} attempts")


def add_distractors(params: Params, occ: Occupancy, rng: np.random.Generator, first_id: int) -> list[np.ndarray]:
    """Up to `n_distractors` short snakes anywhere free; all tries of one distractor run as one batch and the first
    that fits is kept (the original tries one after another); a distractor with no fitting try is skipped."""
    chains: list[np.ndarray] = []
    for _ in range(params.n_distractors):
        free = occ.free_pixels(0)
        if len(free) < MIN_FREE_FRACTION * params.size**2:
            break
        tries = Occupancy(occ.geo, DISTRACTOR_TRIES)
        tries.owner[:] = occ.owner[0]

        def seed_tails(snake: int, live: np.ndarray, paddles: np.ndarray, free=free) -> np.ndarray:
            return pixel_tails(rng, free, params.size, len(live))

        alive, paddles = grow_batch(tries, rng, seed_tails, 1, params.distractor_length, first_id)
        if alive.any():
            winner = int(np.argmax(alive))
            occ.owner[0] = tries.owner[winner]
            chains.append(paddles[winner, 0])
            first_id += params.distractor_length
    return chains


def _fine_grid(centres: np.ndarray, half: int, aa: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window origins [K, 2] (low-res pixels) around centres and the fine sample positions rows/cols [K, S * aa]."""
    origin = np.floor(centres).astype(np.int64) - half
    sub = (np.arange((2 * half + 1) * aa) + 0.5) / aa
    return origin, origin[:, 0, None] + sub, origin[:, 1, None] + sub


def _coverage(dist: np.ndarray, radius: float, aa: int) -> np.ndarray:
    """Coverage at `aa` x resolution (soft edge one fine pixel wide), box-filtered down: [K, S*aa, S*aa] -> [K,S,S]."""
    fine = np.clip((radius - dist) * aa + 0.5, 0.0, 1.0)
    side = fine.shape[1] // aa
    return fine.reshape(len(fine), side, aa, side, aa).mean(axis=(2, 4))


def _paste_max(canvas: np.ndarray, origins: np.ndarray, patches: np.ndarray) -> None:
    side = patches.shape[1]
    for (r, c), patch in zip(origins, patches, strict=True):
        window = canvas[r:r + side, c:c + side]
        np.maximum(window, patch, out=window)


def render(params: Params, chains: list[np.ndarray], levels: list[float], markers: np.ndarray
           ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Draw the paddles (snake s at brightness levels[s]) and the two marker discs (brightness 1).
    Returns the uint8 image and, per snake, the pixels it alone makes nonzero in that image."""
    size, aa = params.size, params.antialias
    half = int(math.ceil(params.paddle_length / 2 + params.paddle_thickness / 2)) + 1
    marker_half = int(math.ceil(params.marker_radius)) + 1
    pad = max(half, marker_half) + 1
    strokes = np.zeros((len(chains), size + 2 * pad, size + 2 * pad), np.float32)
    marks = np.zeros((size + 2 * pad, size + 2 * pad), np.float32)

    paddles = np.concatenate(chains)
    snake_of = np.repeat(np.arange(len(chains)), [len(c) for c in chains])
    origin, rows, cols = _fine_grid(paddles.mean(axis=1), half, aa)
    dist = np.sqrt(segment_dist2(rows, cols, paddles[:, 0], paddles[:, 1]))
    cover = _coverage(dist, params.paddle_thickness / 2, aa) * np.asarray(levels, np.float32)[snake_of, None, None]
    for s in range(len(chains)):
        _paste_max(strokes[s], origin[snake_of == s] + pad, cover[snake_of == s])

    origin, rows, cols = _fine_grid(markers, marker_half, aa)
    dist = np.sqrt((rows[:, :, None] - markers[:, 0, None, None]) ** 2
                   + (cols[:, None, :] - markers[:, 1, None, None]) ** 2)
    _paste_max(marks, origin + pad, _coverage(dist, params.marker_radius, aa))

    inner = (slice(pad, pad + size), slice(pad, pad + size))
    strokes = strokes[(slice(None), *inner)]
    image = np.maximum(strokes.max(axis=0), marks[inner])
    scale = 255.0 / float(image.max())
    pixels = [np.argwhere(np.rint(s * scale) >= 1) for s in strokes]
    return np.rint(image * scale).astype(np.uint8), pixels


def make_sample(size: int, difficulty: str, label: int, rng: np.random.Generator) -> Sample:
    """One image of the given label, drawn from `rng` alone (so a seeded generator fixes every pixel)."""
    params = params_for(size, difficulty)
    if label not in (0, 1):
        raise LRAError(f"label={label!r} must be 0 or 1")
    margin = int(params.margins[rng.integers(len(params.margins))])
    geo = Geometry.make(params, margin)
    occ, targets = grow_targets(params, geo, rng)
    distractors = add_distractors(params, occ, rng, first_id=2 * params.contour_length)

    # The tail end of one target, then the head end of the same target (label 1) or of the other (label 0).
    first = int(rng.integers(2))
    second = first if label == 1 else 1 - first
    markers = np.stack([targets[first][0, 0], targets[second][-1, 1]])

    chains = targets + distractors
    target_level = params.snake_contrast * params.paddle_contrast  # the original dims target paddles only
    levels = [target_level] * 2 + [params.snake_contrast] * len(distractors)
    image, pixels = render(params, chains, levels, markers)
    kinds = ["target"] * 2 + ["distractor"] * len(distractors)
    snakes = [Snake(kind, chain, px) for kind, chain, px in zip(kinds, chains, pixels, strict=True)]
    return Sample(image=image, label=label, snakes=snakes, markers=markers, marker_snakes=(first, second),
                  margin=margin)
