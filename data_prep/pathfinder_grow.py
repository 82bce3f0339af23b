"""Growing snakes paddle by paddle on an occupancy grid, compiled with numba: the generator's hot loop.

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

Attempts run in lockstep, the snakes of an attempt taking turns a paddle at a time, and an attempt dies at its first
dead end. Python's per-paddle numpy calls took 90% of the generator's time, hence one compiled call per batch.
Random numbers: the kernel reads uniform doubles from a buffer in exactly the order and amounts that the earlier
numpy version drew them (`uniform(lo, hi)` is `lo + (hi - lo) * random()`), and `grow_batch` rewinds the generator
to just past the doubles used, so the stream of every image is the one the numpy version made. Its float32 claim
test is float32 here too. One difference: numpy's arctan2 is SIMD (SVML) on AVX-512 CPUs and the kernel's is
libm's, 1 ulp apart in ~1% of calls, which moves paddles by ~1e-15 px (the numpy version had the same dependence on
the CPU). Checked against the numpy version: with libm's arctan2 swapped in, its paddles are bitwise the kernel's;
as it was, images, labels and snake pixels were identical on 1,500 32 px images and 100 128 px ones.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from data_prep.pathfinder_params import Geometry

FREE = -1  # owner code of an unclaimed pixel (paddle ids are >= 0)
SEED_TRIES = 16  # (tail, angle) candidates tested at once when seeding a snake; the first that fits is used
MAX_PADDLES = 128  # paddle ids are int8 (at most 2 * 14 + 35 are used)

_TWO_PI = np.pi - (-np.pi)  # the range numpy's uniform(-pi, pi) scales by


@numba.njit(cache=True, nogil=True)
def _blocked(owner: np.ndarray, a: int, tr: float, tc: float, hr: float, hc: float, ignore: int, low: float,
             high: float, along: np.ndarray, size: int, border: int) -> bool:
    """Does segment (tr, tc)-(hr, hc) cross the wall or touch a paddle of attempt `a` other than `ignore`?"""
    if tr < low or tr > high or tc < low or tc > high or hr < low or hr > high or hc < low or hc > high:
        return True
    dr, dc = hr - tr, hc - tc
    for p in range(along.size):
        r = min(max(int(math.floor(tr + along[p] * dr)), 0), size - 1) + border
        c = min(max(int(math.floor(tc + along[p] * dc)), 0), size - 1) + border
        o = owner[a, r, c]
        if o != FREE and o != ignore:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _claim(owner: np.ndarray, a: int, tr: float, tc: float, hr: float, hc: float, paddle_id: int, half: int,
           border: int, spacing: float, spacing2: np.float32) -> None:
    """Give the still free pixels of attempt `a` within `spacing` of the segment to `paddle_id`: the float32 test
    of the numpy version over its window of `half` pixels around the middle, skipping the pixels more than
    `spacing + 1` from the segment's bounding box (which fail it). The row loop has no branches, so the compiler
    vectorises it (twice as fast as testing and storing pixel by pixel)."""
    cr, cc = int(math.floor((tr + hr) / 2)), int(math.floor((tc + hc) / 2))
    reach = spacing + 1.0
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
            row[j] = pid if (ey * ey + ex * ex <= spacing2) & (o == FREE) else o


@numba.njit(cache=True, nogil=True)
def _turn_weight(turn: float, continuity: float) -> float:
    """max(cos(min(|turn| * continuity, pi/2)), 0)^2, exactly 0 from pi/2 on (cos(pi/2) is 6e-17 in floats)."""
    bend = abs(turn) * continuity
    if bend < np.pi / 2:
        w = math.cos(bend)
        return w * w
    return 0.0


@numba.njit(cache=True, nogil=True)
def _grow(owner: np.ndarray, seeds: np.ndarray, draws: np.ndarray, n_snakes: int, n_paddles: int, first_id: int,
          seed_distance: float, length: float, margin: float, low: float, high: float, along: np.ndarray,
          size: int, border: int, half: int, spacing: float, spacing2: np.float32, steps: np.ndarray, delta: float,
          continuity: float) -> tuple[np.ndarray, np.ndarray, int]:
    """The lockstep growth of all attempts; returns (alive [B], paddles [B, n_snakes, n_paddles, 2, 2], doubles
    read). Snake 0 seeds at the centres of pixels `seeds [B, T]` (flat image indices), later snakes
    `seed_distance` from snake 0's first tail."""
    batch, tries, n_steps = owner.shape[0], seeds.shape[1], steps.size
    paddles = np.zeros((batch, n_snakes, n_paddles, 2, 2))
    pivot = np.zeros((batch, n_snakes, 2))
    angle = np.zeros((batch, n_snakes))
    live = np.arange(batch)
    n_live, pos = batch, 0
    cum = np.zeros(n_steps)
    weight = np.zeros(n_steps)
    for k in range(n_paddles):
        for j in range(n_snakes):
            if n_live == 0:
                return np.zeros(batch, np.bool_), paddles, pos
            paddle_id = first_id + k * n_snakes + j
            kept = 0
            if k == 0:  # seed: the first candidate tail whose paddle fits, at a random angle
                offset_at = pos
                if j > 0:
                    pos += n_live * tries
                angle_at = pos
                pos += n_live * tries
                for q in range(n_live):
                    a = live[q]
                    for t in range(tries):
                        if j == 0:
                            tr, tc = seeds[a, t] // size + 0.5, seeds[a, t] % size + 0.5
                        else:
                            theta = -np.pi + _TWO_PI * draws[offset_at + q * tries + t]
                            tr = paddles[a, 0, 0, 0, 0] + seed_distance * math.sin(theta)
                            tc = paddles[a, 0, 0, 0, 1] + seed_distance * math.cos(theta)
                        theta = -np.pi + _TWO_PI * draws[angle_at + q * tries + t]
                        sr, sc = math.sin(theta), math.cos(theta)
                        hr, hc = tr + length * sr, tc + length * sc
                        if not _blocked(owner, a, tr, tc, hr, hc, FREE, low, high, along, size, border):
                            live[kept] = a
                            kept += 1
                            _claim(owner, a, tr, tc, hr, hc, paddle_id, half, border, spacing, spacing2)
                            paddles[a, j, k, 0, 0], paddles[a, j, k, 0, 1] = tr, tc
                            paddles[a, j, k, 1, 0], paddles[a, j, k, 1, 1] = hr, hc
                            pivot[a, j, 0], pivot[a, j, 1] = hr + margin * sr, hc + margin * sc
                            angle[a, j] = math.atan2(sr, sc)
                            break
            else:  # extend: a weighted draw among the free directions past the pivot
                turn_at, pick_at = pos, pos + n_live
                pos += 2 * n_live
                ignore = paddle_id - n_snakes  # the snake's previous paddle, which always touches the candidate
                for q in range(n_live):
                    a = live[q]
                    u = -0.5 + draws[turn_at + q]
                    total = 0.0
                    for s in range(n_steps):
                        turn = (steps[s] + u) * delta
                        w = _turn_weight(turn, continuity)
                        if w > 0.0:
                            x = angle[a, j] + turn
                            sr, sc = math.sin(x), math.cos(x)
                            pr, pc = pivot[a, j, 0], pivot[a, j, 1]
                            if _blocked(owner, a, pr + margin * sr, pc + margin * sc, pr + (length + margin) * sr,
                                        pc + (length + margin) * sc, ignore, low, high, along, size, border):
                                w = 0.0
                        weight[s] = w
                        total += w
                        cum[s] = total
                    draw = draws[pick_at + q] * total
                    pick = 0
                    for s in range(n_steps):
                        if cum[s] <= draw:
                            pick += 1
                    pick = min(pick, n_steps - 1)
                    if weight[pick] > 0.0:
                        x = angle[a, j] + (steps[pick] + u) * delta
                        sr, sc = math.sin(x), math.cos(x)
                        pr, pc = pivot[a, j, 0], pivot[a, j, 1]
                        tr, tc = pr + margin * sr, pc + margin * sc
                        hr, hc = pr + (length + margin) * sr, pc + (length + margin) * sc
                        live[kept] = a
                        kept += 1
                        _claim(owner, a, tr, tc, hr, hc, paddle_id, half, border, spacing, spacing2)
                        paddles[a, j, k, 0, 0], paddles[a, j, k, 0, 1] = tr, tc
                        paddles[a, j, k, 1, 0], paddles[a, j, k, 1, 1] = hr, hc
                        pivot[a, j, 0], pivot[a, j, 1] = hr + margin * sr, hc + margin * sc
                        angle[a, j] = math.atan2(sr, sc)
            n_live = kept
    alive = np.zeros(batch, np.bool_)
    alive[live[:n_live]] = True
    return alive, paddles, pos


def grow_batch(owner: np.ndarray, rng: np.random.Generator, seeds: np.ndarray, geo: Geometry, n_snakes: int,
               n_paddles: int, first_id: int, seed_distance: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Grow `n_snakes` snakes of `n_paddles` paddles in every attempt of `owner` (claimed in place); snake 0 seeds
    at one of the pixels `seeds [B, SEED_TRIES]`. Returns (alive [B], paddles [B, n_snakes, n_paddles, 2, 2]);
    paddle k of snake j gets id first_id + k * n_snakes + j. `rng` ends just past the doubles the growth used."""
    batch, tries = seeds.shape[:2]
    if first_id + n_snakes * n_paddles > MAX_PADDLES:
        raise ValueError(f"paddle ids up to {first_id + n_snakes * n_paddles - 1} do not fit in the int8 grid")
    bound = batch * tries * (2 * n_snakes - 1) + 2 * batch * n_snakes * (n_paddles - 1)
    state = rng.bit_generator.state
    draws = rng.random(bound)
    alive, paddles, used = _grow(owner, seeds, draws, n_snakes, n_paddles, first_id, float(seed_distance),
                                 geo.length, geo.margin, geo.low, geo.high, geo.along, geo.size, geo.border, geo.half,
                                 geo.spacing, np.float32(geo.spacing**2), geo.steps, geo.delta, geo.continuity)
    rng.bit_generator.state = state
    rng.random(used)
    return alive, paddles


def new_owner(geo: Geometry, batch: int) -> np.ndarray:
    """An empty grid for `batch` attempts: int8, as paddle ids stay below 2 * 14 + 35 (half of int16's memory to
    clear per round and to keep in cache)."""
    return np.full((batch, geo.side, geo.side), FREE, dtype=np.int8)


@numba.njit(cache=True, nogil=True)
def _free_pixels(owner: np.ndarray, size: int, border: int, lo: int, hi: int) -> np.ndarray:
    out = np.empty((hi - lo) * (hi - lo), np.int64)
    n = 0
    for r in range(lo, hi):
        for c in range(lo, hi):
            if owner[r + border, c + border] == FREE:
                out[n] = r * size + c
                n += 1
    return out[:n]


def free_pixels(owner: np.ndarray, geo: Geometry) -> np.ndarray:
    """Flat image indices (ascending) of the unclaimed pixels of one grid [side, side] where a stroke may start."""
    return _free_pixels(owner, geo.size, geo.border, int(math.ceil(geo.low)), int(math.floor(geo.high)))


def seed_pixels(rng: np.random.Generator, pixels: np.ndarray, count: int) -> np.ndarray:
    """`count` x SEED_TRIES random picks from flat pixel indices: [count, SEED_TRIES]."""
    return pixels[rng.integers(0, len(pixels), (count, SEED_TRIES))]
