"""The embedded demo: the data-efficiency curve on scikit-learn's handwritten digits.

The 1797 8x8 digits that ship inside scikit-learn are written out as an image folder, and
`transferkit curve` measures, at 1, 2, 5, 10, 20, 50 and all labelled images per class (3 seeds),
a linear probe on the pretrained EfficientNet-Lite0 (transfer) against the same probe on HOG
features (from scratch), on one fixed test split. It prints the table, the two verdicts, and where
the picture is. Whatever the curve says is what the demo says: on these tiny glyphs, far from
ImageNet's photographs, the from-scratch features win (see the README).

No other labelled data ships inside transferkit's dependencies (scikit-learn's other bundled sets
are tables — iris, wine, breast cancer, diabetes, linnerud — its two sample photos are unlabelled,
and torchvision and timm ship none), so the digits are the demo's data.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console

from transferkit.commands._console import console as stdout
from transferkit.commands._flags import Precision, Seed


def register(app: typer.Typer) -> None:
    app.command(name="demo")(demo)


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the digits images and the curve.")] = Path(
        "runs/digits-demo"),
    backbone: Annotated[str, typer.Option("--backbone", "-b", help="Image backbone (see `transferkit models`).")] = (
        "efficientnet_lite0"),
    shots: Annotated[str, typer.Option(help="Labelled images per class at each point.")] = "1,2,5,10,20,50,all",
    seeds: Annotated[int, typer.Option(help="Subsets drawn per shot count.")] = 3,
    finetune: Annotated[bool, typer.Option("--finetune", help="Also fine-tune Lite0 (LP-FT) at the smaller shot "
                                                              "counts while --budget lasts (minutes more).")] = False,
    budget: Annotated[float | None, typer.Option(help="--finetune: minutes for the fine-tuned points.")] = None,
    seed: Seed = 0,
    precision: Precision = "auto",
) -> None:
    """The data-efficiency curve on scikit-learn's handwritten digits: transfer against from scratch."""
    run_demo(out=out, backbone=backbone, shots=shots, seeds=seeds, finetune=finetune, budget=budget, seed=seed,
             precision=precision, console=stdout)


#: what `write_digits` writes: root/<digit>/<index>.png, and its marker
_DIGIT_FILE = re.compile(r"\d{4}\.png")
_MARKER = ".complete"


def write_digits(root: Path) -> Path:
    """The 1797 8x8 digits of `sklearn.datasets.load_digits` as PNGs in root/<digit>/ (idempotent).

    A folder that holds anything else (a user's files) is refused, and nothing is written into it.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    from transferkit.errors import BundleError

    marker = root / _MARKER
    if marker.exists():
        return root
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            ours = entry.is_dir() and entry.name.isdigit() and all(
                _DIGIT_FILE.fullmatch(f.name) and f.is_file() for f in entry.iterdir())
            if not ours:
                raise BundleError(f"'{root}' holds '{entry.name}', which the demo did not write; refusing to write "
                                  "the digits into it. Choose another --out")
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (255 - image * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # dark ink on white paper
        Image.fromarray(pixels, mode="L").save(folder / f"{i:04d}.png")
    marker.write_text("ok\n")
    return root


def few_per_class(data: Any, n: int, seed: int) -> list[int]:
    """Indices of `n` examples per class, drawn with `seed` (the low-data regime transfer is for)."""
    rng = np.random.default_rng(seed)
    labels = np.array(data.labels)
    return sorted(int(i) for c in sorted(set(data.labels))
                  for i in rng.permutation(np.flatnonzero(labels == c))[:n])


def run_demo(*, out: Path, backbone: str, shots: str = "1,2,5,10,20,50,all", seeds: int = 3, finetune: bool = False,
             budget: float | None = None, seed: int = 0, precision: str = "auto", console: Console = stdout,
             cache_dir: Any = None, weights: str | None = None) -> Any:
    """Write the digits, run the curve into OUT/curve (the demo's own folder: replaced each run)."""
    from transferkit.commands.curve import run_curve

    images = write_digits(out / "images")
    console.print("[bold]transferkit demo[/]: scikit-learn's 1797 handwritten digits (8x8 pixels, shipped inside "
                  f"scikit-learn), written as images to {images}.", highlight=False)
    console.print(f"transfer = a linear head on frozen, pretrained {backbone} features; from scratch = the same head "
                  "on HOG features (histograms of oriented gradients, nothing pretrained). Both see the same "
                  "labelled images at every point.", highlight=False)
    values = {"data": images, "out": out / "curve", "backbone": backbone, "weights": weights, "precision": precision,
              "seed": seed}
    frame = run_curve(values, shots=shots, seeds=seeds, test=0.2, scratch=None, finetune=finetune, budget=budget,
                      epochs=10, cache=cache_dir, overwrite=True, as_json=False, out=console,
                      title="scikit-learn digits (8x8): test accuracy against labels per class")
    console.print("The same on your own data: transferkit curve DATA --out runs/mine-curve (--finetune to fine-tune "
                  "too; --text-column for a table of texts).", highlight=False)
    return frame
