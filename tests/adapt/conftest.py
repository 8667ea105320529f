"""Generated domains the adaptation tests share."""

from __future__ import annotations

import numpy as np


def shifted_problem(seed: int) -> tuple[np.ndarray, ...]:
    """Two Gaussian classes (apart along dimension 0); the target is the same classes rotated by 30° in two
    planes and moved by a constant offset (a class-independent shift)."""
    rng = np.random.default_rng(seed)
    d = 8
    means = np.zeros((2, d))
    means[1, 0] = 3.0
    scales = np.linspace(1.0, 3.0, d)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        return means[y] + rng.normal(size=(n, d)) * scales, y

    xs, ys = draw(600)
    xt, yt = draw(600)
    rotation = np.eye(d)
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    for i, j in ((0, 1), (2, 5)):
        plane = np.eye(d)
        plane[i, i] = plane[j, j] = c
        plane[i, j], plane[j, i] = -s, s
        rotation = rotation @ plane
    return xs, ys, xt @ rotation + 4.0, yt
