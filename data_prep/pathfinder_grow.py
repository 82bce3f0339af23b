"""Placing and growing the snakes of one image on an occupancy grid, compiled with numba: the generator's hot loop.

A snake is a chain of paddles of length L: each paddle ends at its head, the chain bends at a pivot `margin` beyond
that head, and the next paddle runs from `margin` to `L + margin` past the pivot (so dashes are `2 * margin` apart).
Candidate directions lie on the circle of radius `L + margin` around the pivot, one pixel of arc apart, weighted by
`max(cos(min(|dtheta| * continuity, pi/2)), 0)^2` and by free space: a candidate whose footprint touches an earlier
footprint, the border padding or the outside gets weight 0. The original draws a candidate and redraws while it
overlaps; weighing all candidates at once samples from the same weights conditioned on no overlap.

The occupancy grid `owner [B, side, side]` says which paddle claims each pixel, for B independent attempts (FREE if
none). A paddle claims the pixels whose centres lie within `spacing` of it, so a candidate is tested by looking up
points every half pixel along it (exact up to the pixel grid, as the original's raster masks are); the border wall
is straight, so testing a candidate's two ends against it is exact.

Two target snakes start `seed_distance` apart near the centre and grow in turn, a paddle at a time; an attempt that
reaches a dead end is thrown away. Most attempts die (Path-X needs a few hundred per image, since two snakes of
~140 px must fit in 128 px), so attempts run as a batch in lockstep and the first survivor in index order is kept:
the same distribution as retrying one attempt at a time. Distractors start anywhere free (a few tries each, then
skipped).

Why compiled, and why one file: the numpy version (one call per paddle for all attempts) spent 90% of its time in
per-call overhead, so an image is now one compiled call; numba's on-disk cache is invalidated by a change to the
file of the function it cached, not to the files of the functions that one calls, so all of it is here.

Same images as the numpy version: the random numbers come from the image's own numpy Generator (numba's Generator
methods are numpy's algorithms on the same bit generator), in the order and amounts that the numpy version drew
them, and its float32 claim test is float32 here too. One difference: numpy's arctan2 is SIMD (SVML) on AVX-512
CPUs and the kernel's is libm's, 1 ulp apart in ~1% of calls, which moves paddles by ~1e-15 px (the numpy version
had the same dependence on the CPU). Checked against the numpy version: with libm's arctan2 swapped in, its paddles
are bitwise the kernel's; as it was, images, labels and snake pixels were identical on 1,500 32 px images and 100
128 px ones.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from data_prep.pathfinder_params import Geometry, Params

FREE = -1  # owner code of an unclaimed pixel (paddle ids are >= 0)
MAX_PADDLES = 128  # paddle ids are int8 (at most 2 * 14 + 35 are used)
SEED_TRIES = 16  # (tail, angle) candidates tested at once when seeding a snake; the first that fits is used
FIRST_BATCH, MAX_BATCH = 4, 64  # target attempts per round: doubles after each round without a survivor
MAX_TARGET_ATTEMPTS = 200_000  # give up (a bug or impossible settings) after this many target attempts
DISTRACTOR_TRIES = 5  # the original: one try + 4 retries per distractor, then the distractor is skipped
MIN_FREE_FRACTION = 0.01  # stop adding distractors when less of the image than this is free (the original's rule)


@numba.njit(cache=True, nogil=True)
def _blocked(owner: np.ndarray, a: int, tr: float, tc: float, hr: float, hc: float, ignore: int,
             geo: Geometry) -> bool:
    """Does segment (tr, tc)-(hr, hc) cross the wall or touch a paddle of attempt `a` other than `ignore`?"""
    low, high, last = geo.low, geo.high, geo.size - 1
    if tr < low or tr > high or tc < low or tc > high or hr < low or hr > high or hc < low or hc > high:
        return True
    dr, dc = hr - tr, hc - tc
    for p in range(geo.along.size):
        r = min(max(int(math.floor(tr + geo.along[p] * dr)), 0), last) + geo.border
        c = min(max(int(math.floor(tc + geo.along[p] * dc)), 0), last) + geo.border
        o = owner[a, r, c]
        if o != FREE and o != ignore:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _claim(owner: np.ndarray, a: int, tr: float, tc: float, hr: float, hc: float, paddle_id: int,
           geo: Geometry) -> None:
    """Give the still free pixels of attempt `a` within `spacing` of the segment to `paddle_id`: the float32 test
    of the numpy version over its window of `half` pixels around the middle, skipping the pixels more than
    `spacing + 1` from the segment's bounding box (which fail it). The row loop has no branches, so the compiler
    vectorises it (twice as fast as testing and storing pixel by pixel)."""
    half, border = geo.half, geo.border
    cr, cc = int(math.floor((tr + hr) / 2)), int(math.floor((tc + hc) / 2))
    reach = geo.spacing + 1.0
    r0 = max(int(math.floor(min(tr, hr) - reach)), cr - half)
    r1 = min(int(math.ceil(max(tr, hr) + reach)), cr + half)
    c0 = max(int(math.floor(min(tc, hc) - reach)), cc - half)
    c1 = min(int(math.ceil(max(tc, hc) + reach)), cc + half)
    ty, tx = np.float32(tr), np.float32(tc)
    dy, dx = np.float32(hr) - ty, np.float32(hc) - tx
    denom = max(dy * dy + dx * dx, np.float32(1e-12))
    zero, one = np.float32(0.0), np.float32(1.0)
    pid = np.int8(paddle_id)
    for r in range(r0, r1 + 1):
        qy = np.float32(r + 0.5) - ty
        row = owner[a, r + border, c0 + border:c1 + 1 + border]
        for j in range(row.size):
            qx = np.float32(c0 + j + 0.5) - tx
            t = min(max((qy * dy + qx * dx) / denom, zero), one)
            ey, ex = qy - t * dy, qx - t * dx
            o = row[j]
            row[j] = pid if (ey * ey + ex * ex <= geo.spacing2) & (o == FREE) else o


@numba.njit(cache=True, nogil=True)
def _accept(owner: np.ndarray, a: int, j: int, k: int, paddle_id: int, tr: float, tc: float, hr: float,
            hc: float, sr: float, sc: float, geo: Geometry, paddles: np.ndarray, pivot: np.ndarray,
            angle: np.ndarray) -> None:
    """Paddle k of snake j in attempt a runs from (tr, tc) to (hr, hc), direction (sr, sc): claim and record it."""
    _claim(owner, a, tr, tc, hr, hc, paddle_id, geo)
    paddles[a, j, k, 0, 0], paddles[a, j, k, 0, 1] = tr, tc
    paddles[a, j, k, 1, 0], paddles[a, j, k, 1, 1] = hr, hc
    pivot[a, j, 0], pivot[a, j, 1] = hr + geo.margin * sr, hc + geo.margin * sc
    angle[a, j] = math.atan2(sr, sc)


@numba.njit(cache=True, nogil=True)
def grow(owner: np.ndarray, rng: np.random.Generator, seeds: np.ndarray, geo: Geometry, n_snakes: int,
         n_paddles: int, first_id: int, seed_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Grow `n_snakes` snakes of `n_paddles` paddles in every attempt of `owner` (claimed in place). Snake 0 seeds
    at the centre of one of the pixels `seeds [B, T]` (flat image indices), later snakes `seed_distance` from
    snake 0's first tail. Returns (alive [B], paddles [B, n_snakes, n_paddles, 2, 2]); paddle k of snake j gets id
    first_id + k * n_snakes + j."""
    batch, tries, n_steps = owner.shape[0], seeds.shape[1], geo.steps.size
    paddles = np.zeros((batch, n_snakes, n_paddles, 2, 2))
    pivot = np.zeros((batch, n_snakes, 2))
    angle = np.zeros((batch, n_snakes))
    live = np.arange(batch)
    n_live = batch
    first, second = np.zeros(batch * tries), np.zeros(batch * tries)  # one step's draws, as numpy drew them
    cum, weight = np.zeros(n_steps), np.zeros(n_steps)
    reach = geo.length + geo.margin
    for k in range(n_paddles):
        for j in range(n_snakes):
            if n_live == 0:
                return np.zeros(batch, np.bool_), paddles
            paddle_id = first_id + k * n_snakes + j
            kept = 0
            if k == 0:  # seed: the first candidate tail whose paddle fits, at a random angle
                for i in range(n_live * tries if j > 0 else 0):
                    first[i] = rng.uniform(-np.pi, np.pi)  # where around snake 0's tail
                for i in range(n_live * tries):
                    second[i] = rng.uniform(-np.pi, np.pi)  # the paddle's direction
                for q in range(n_live):
                    a = live[q]
                    for t in range(tries):
                        if j == 0:
                            tr, tc = seeds[a, t] // geo.size + 0.5, seeds[a, t] % geo.size + 0.5
                        else:
                            theta = first[q * tries + t]
                            tr = paddles[a, 0, 0, 0, 0] + seed_distance * math.sin(theta)
                            tc = paddles[a, 0, 0, 0, 1] + seed_distance * math.cos(theta)
                        sr, sc = math.sin(second[q * tries + t]), math.cos(second[q * tries + t])
                        hr, hc = tr + geo.length * sr, tc + geo.length * sc
                        if not _blocked(owner, a, tr, tc, hr, hc, FREE, geo):
                            live[kept] = a
                            kept += 1
                            _accept(owner, a, j, k, paddle_id, tr, tc, hr, hc, sr, sc, geo, paddles, pivot, angle)
                            break
            else:  # extend: a weighted draw among the free directions past the pivot
                for q in range(n_live):
                    first[q] = rng.uniform(-0.5, 0.5)  # the offset of the candidate turns
                for q in range(n_live):
                    second[q] = rng.uniform(0.0, 1.0)  # the weighted pick
                ignore = paddle_id - n_snakes  # the snake's previous paddle, which always touches the candidate
                for q in range(n_live):
                    a = live[q]
                    pr, pc = pivot[a, j, 0], pivot[a, j, 1]
                    total = 0.0
                    for s in range(n_steps):
                        turn = (geo.steps[s] + first[q]) * geo.delta
                        bend = abs(turn) * geo.continuity
                        w = 0.0
                        if bend < np.pi / 2:  # else weight 0 (cos(pi/2) is 6e-17 in floats, not 0)
                            sr, sc = math.sin(angle[a, j] + turn), math.cos(angle[a, j] + turn)
                            if not _blocked(owner, a, pr + geo.margin * sr, pc + geo.margin * sc, pr + reach * sr,
                                            pc + reach * sc, ignore, geo):
                                w = math.cos(bend) ** 2  # max(cos(min(bend, pi/2)), 0)^2, for free ones only
                        weight[s] = w
                        total += w
                        cum[s] = total
                    draw = second[q] * total
                    pick = 0
                    for s in range(n_steps):
                        pick += cum[s] <= draw
                    pick = min(pick, n_steps - 1)
                    if weight[pick] > 0.0:
                        x = angle[a, j] + (geo.steps[pick] + first[q]) * geo.delta
                        sr, sc = math.sin(x), math.cos(x)
                        live[kept] = a
                        kept += 1
                        _accept(owner, a, j, k, paddle_id, pr + geo.margin * sr, pc + geo.margin * sc, pr + reach * sr,
                                pc + reach * sc, sr, sc, geo, paddles, pivot, angle)
            n_live = kept
    alive = np.zeros(batch, np.bool_)
    alive[live[:n_live]] = True
    return alive, paddles


@numba.njit(cache=True, nogil=True)
def _seed_pixels(rng: np.random.Generator, pixels: np.ndarray, count: int) -> np.ndarray:
    """[count, SEED_TRIES] random picks from flat pixel indices (numpy's `integers(0, n, shape)`, one by one)."""
    out = np.empty((count, SEED_TRIES), np.int64)
    for i in range(count):
        for t in range(SEED_TRIES):
            out[i, t] = pixels[rng.integers(0, pixels.size)]
    return out


@numba.njit(cache=True, nogil=True)
def _free_pixels(owner: np.ndarray, geo: Geometry) -> np.ndarray:
    """Flat image indices (ascending) of the unclaimed pixels of one grid [side, side] where a stroke may start."""
    lo, hi = int(math.ceil(geo.low)), int(math.floor(geo.high))
    out = np.empty(max(hi - lo, 0) ** 2, np.int64)
    n = 0
    for r in range(lo, hi):
        for c in range(lo, hi):
            if owner[r + geo.border, c + geo.border] == FREE:
                out[n] = r * geo.size + c
                n += 1
    return out[:n]


@numba.njit(cache=True, nogil=True)
def _grow_targets(rng: np.random.Generator, geo: Geometry, centre: np.ndarray, length: int, seed_distance: float
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Rounds of attempts until one fits both targets; returns (its grid, its paddles [2, length, 2, 2], attempts
    made), or attempts = -1 after MAX_TARGET_ATTEMPTS."""
    batch, tried = FIRST_BATCH, 0
    while tried < MAX_TARGET_ATTEMPTS:
        owner = np.full((batch, geo.side, geo.side), FREE, np.int8)
        seeds = _seed_pixels(rng, centre, batch)
        alive, paddles = grow(owner, rng, seeds, geo, 2, length, 0, seed_distance)
        for a in range(batch):
            if alive[a]:
                return owner[a].copy(), paddles[a], tried + a + 1
        tried += batch
        batch = min(2 * batch, MAX_BATCH)
    return np.full((geo.side, geo.side), FREE, np.int8), np.zeros((2, length, 2, 2)), -1


@numba.njit(cache=True, nogil=True)
def _add_distractors(rng: np.random.Generator, geo: Geometry, owner: np.ndarray, count: int, length: int,
                     first_id: int, min_free: float) -> np.ndarray:
    """Up to `count` distractors in `owner [side, side]` (claimed in place): [n, length, 2, 2]."""
    chains = np.zeros((count, length, 2, 2))
    n = 0
    for _ in range(count):
        free = _free_pixels(owner, geo)
        if free.size < min_free:
            break
        tries = np.empty((DISTRACTOR_TRIES, geo.side, geo.side), np.int8)
        for t in range(DISTRACTOR_TRIES):
            tries[t] = owner
        alive, paddles = grow(tries, rng, _seed_pixels(rng, free, DISTRACTOR_TRIES), geo, 1, length, first_id, 0.0)
        for t in range(DISTRACTOR_TRIES):
            if alive[t]:
                owner[:] = tries[t]
                chains[n] = paddles[t, 0]
                n += 1
                first_id += length
                break
    return chains[:n]


def place_snakes(params: Params, geo: Geometry, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The two targets (the first one's tail in the centre region: the original keeps it 2 * seed_distance from the
    edges) and the distractors, each as paddles [n, 2, 2] in chain order."""
    if 2 * params.contour_length + params.distractor_budget > MAX_PADDLES:
        raise ValueError(f"{params}: more paddles than the int8 occupancy grid can name")
    lo, hi = 2 * params.seed_distance, params.size - 2 * params.seed_distance
    centre = np.zeros((params.size, params.size), bool)
    centre[lo:hi, lo:hi] = True
    owner, targets, tried = _grow_targets(rng, geo, np.flatnonzero(centre), params.contour_length,
                                          float(params.seed_distance))
    if tried < 0:
        raise RuntimeError(f"no two target snakes of {params.contour_length} paddles fit in {MAX_TARGET_ATTEMPTS}"
                           " attempts")
    distractors = _add_distractors(rng, geo, owner, params.n_distractors, params.distractor_length,
                                   2 * params.contour_length, MIN_FREE_FRACTION * params.size**2)
    return [targets[0], targets[1]], list(distractors)
