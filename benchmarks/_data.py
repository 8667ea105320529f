"""Procedural image datasets with a learnable signal, written as real JPEG files (benchmarks only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "stripes")


def draw_shape(kind: str, rng: np.random.Generator, size: tuple[int, int] = (400, 300)) -> Image.Image:
    """A photo-sized image: textured background, one shape of `kind` at a random place and colour."""
    width, height = size
    background = rng.integers(0, 256, 3)
    noise = rng.normal(0, 25, (height, width, 3))
    pixels = (background[None, None, :] + noise).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(pixels)
    draw = ImageDraw.Draw(img)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    r = int(rng.integers(40, 110))
    cx, cy = int(rng.integers(r, width - r)), int(rng.integers(r, height - r))
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif kind == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        for x in range(cx - r, cx + r, 16):
            draw.rectangle((x, cy - r, x + 7, cy + r), fill=colour)
    return img


def write_shapes(root: Path, per_class: int, seed: int = 0, size: tuple[int, int] = (400, 300)) -> Path:
    """root/<shape>/<i>.jpg, `per_class` JPEGs per shape of `size` (skipped when already written)."""
    marker = root / f".complete-{per_class}-{seed}-{size[0]}x{size[1]}"
    if marker.exists():
        return root
    rng = np.random.default_rng(seed)
    for kind in SHAPES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw_shape(kind, rng, size).save(root / kind / f"{i:04d}.jpg", quality=88)
    marker.write_text("ok\n")
    return root
