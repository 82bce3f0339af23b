"""Drawing a Pathfinder image from its paddles: strokes and marker discs rendered anti-aliased, combined by maximum.

Strokes and discs are rendered at `antialias` (2) times the resolution with a soft edge one fine pixel wide,
box-filtered down, combined by maximum (as the original combines its downsampled strokes) and scaled so the
brightest pixel is 255. Coordinates are (row, col) floats in pixels; pixel (i, j) covers [i, i+1) x [j, j+1).

The per-paddle loops are compiled with numba (the numpy version spent 1.2 ms of a 32 px image's 4.6 ms on them);
they do the numpy version's float operations in its order, including the 2 x 2 box filter's
`(a00 + a01) + (a10 + a11)`, so the pixels are the same.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from data_prep.pathfinder_params import Params

ANTIALIAS = 2  # the only factor the box filter below is written for (both datasets use it)


@numba.njit(cache=True, nogil=True, inline="always")
def _fine(radius: float, dist: float) -> float:
    """Coverage of one fine sample: 1 inside, 0 outside, linear over the fine pixel across the edge."""
    return min(max((radius - dist) * ANTIALIAS + 0.5, 0.0), 1.0)


@numba.njit(cache=True, nogil=True)
def _paste(canvas: np.ndarray, fine: np.ndarray, r0: int, c0: int, level: float) -> None:
    """Box-filter `fine [2S, 2S]` down, scale by `level` and max it into canvas[r0:r0+S, c0:c0+S] (float32)."""
    side = fine.shape[0] // 2
    for i in range(side):
        for j in range(side):
            box = (fine[2 * i, 2 * j] + fine[2 * i, 2 * j + 1]) + (fine[2 * i + 1, 2 * j] + fine[2 * i + 1, 2 * j + 1])
            value = np.float32(box / 4 * level)
            if value > canvas[r0 + i, c0 + j]:
                canvas[r0 + i, c0 + j] = value


@numba.njit(cache=True, nogil=True)
def _draw_strokes(strokes: np.ndarray, paddles: np.ndarray, snake_of: np.ndarray, levels: np.ndarray, half: int,
                  radius: float, pad: int) -> None:
    """Max every paddle, a segment of half-width `radius`, into its snake's canvas strokes[snake_of[k]]."""
    n_fine = (2 * half + 1) * ANTIALIAS
    fine = np.zeros((n_fine, n_fine))
    for k in range(paddles.shape[0]):
        ty, tx = paddles[k, 0, 0], paddles[k, 0, 1]
        dy, dx = paddles[k, 1, 0] - ty, paddles[k, 1, 1] - tx
        denom = max(dy * dy + dx * dx, 1e-12)
        r0 = int(math.floor((paddles[k, 0, 0] + paddles[k, 1, 0]) / 2)) - half
        c0 = int(math.floor((paddles[k, 0, 1] + paddles[k, 1, 1]) / 2)) - half
        for u in range(n_fine):
            qy = (r0 + (u + 0.5) / ANTIALIAS) - ty
            for v in range(n_fine):
                qx = (c0 + (v + 0.5) / ANTIALIAS) - tx
                t = min(max((qy * dy + qx * dx) / denom, 0.0), 1.0)
                ey, ex = qy - t * dy, qx - t * dx
                fine[u, v] = _fine(radius, math.sqrt(ey * ey + ex * ex))
        _paste(strokes[snake_of[k]], fine, r0 + pad, c0 + pad, np.float64(levels[snake_of[k]]))


@numba.njit(cache=True, nogil=True)
def _draw_discs(canvas: np.ndarray, centres: np.ndarray, half: int, radius: float, pad: int) -> None:
    """Max a disc of `radius` (brightness 1) around each centre into canvas."""
    n_fine = (2 * half + 1) * ANTIALIAS
    fine = np.zeros((n_fine, n_fine))
    for k in range(centres.shape[0]):
        r0 = int(math.floor(centres[k, 0])) - half
        c0 = int(math.floor(centres[k, 1])) - half
        for u in range(n_fine):
            qy = (r0 + (u + 0.5) / ANTIALIAS) - centres[k, 0]
            for v in range(n_fine):
                qx = (c0 + (v + 0.5) / ANTIALIAS) - centres[k, 1]
                fine[u, v] = _fine(radius, math.sqrt(qy * qy + qx * qx))
        _paste(canvas, fine, r0 + pad, c0 + pad, 1.0)


def render(params: Params, chains: list[np.ndarray], levels: list[float], markers: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, float]:
    """Draw the paddles (snake s at brightness levels[s]) and the two marker discs (brightness 1). Returns the uint8
    image, each snake's own layer [n, size, size] (float32, before scaling) and the scale to 0-255."""
    if params.antialias != ANTIALIAS:
        raise ValueError(f"antialias={params.antialias}: the renderer is written for {ANTIALIAS}")
    size = params.size
    half = int(math.ceil(params.paddle_length / 2 + params.paddle_thickness / 2)) + 1
    marker_half = int(math.ceil(params.marker_radius)) + 1
    pad = max(half, marker_half) + 1
    strokes = np.zeros((len(chains), size + 2 * pad, size + 2 * pad), np.float32)
    marks = np.zeros((size + 2 * pad, size + 2 * pad), np.float32)
    snake_of = np.repeat(np.arange(len(chains)), [len(c) for c in chains])
    _draw_strokes(strokes, np.concatenate(chains), snake_of, np.asarray(levels, np.float32), half,
                  params.paddle_thickness / 2, pad)
    _draw_discs(marks, np.ascontiguousarray(markers, dtype=np.float64), marker_half, params.marker_radius, pad)

    inner = (slice(pad, pad + size), slice(pad, pad + size))
    strokes = strokes[(slice(None), *inner)]
    image = np.maximum(strokes.max(axis=0), marks[inner])
    scale = 255.0 / float(image.max())
    return np.rint(image * scale).astype(np.uint8), strokes, scale
