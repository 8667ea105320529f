"""The embedded default: scikit-learn's handwritten digits, written out as an image folder and fitted.

It prints the test accuracy of the frozen pretrained backbone + linear head next to the same head on
a randomly initialised copy of the same backbone: the difference is what the pretrained weights bring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from transferkit.commands._console import console as stdout
from transferkit.commands._flags import Precision, Seed


def register(app: typer.Typer) -> None:
    app.command(name="demo")(demo)


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the digits images and model.")] = Path(
        "runs/digits-demo"),
    backbone: Annotated[str, typer.Option("--backbone", "-b", help="Image backbone (see `transferkit models`).")] = (
        "efficientnet_lite0"),
    seed: Seed = 0,
    precision: Precision = "auto",
) -> None:
    """Fit on scikit-learn's handwritten digits, pretrained vs random-init backbone."""
    run_demo(out=out, backbone=backbone, seed=seed, precision=precision, console=stdout)


def write_digits(root: Path) -> Path:
    """The 1797 8x8 digits of `sklearn.datasets.load_digits` as PNGs in root/<digit>/ (idempotent)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    marker = root / ".complete"
    if marker.exists():
        return root
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


def run_demo(*, out: Path, backbone: str, seed: int, precision: str, console: Console) -> dict[str, Any]:
    """Fit pretrained and random-init backbones on all training digits and on 10 per class."""
    from transferkit.commands._console import metrics_tables
    from transferkit.data import load_dataset
    from transferkit.data.split import split_indices
    from transferkit.estimators.probe import TransferClassifier

    images = write_digits(out / "images")
    data = load_dataset(images)
    splits = split_indices(data.labels, val_fraction=0.15, test_fraction=0.15, seed=seed)
    train, val, test = (data.subset(splits[s]) for s in ("train", "val", "test"))
    few = train.subset(few_per_class(train, 10, seed))
    console.print(f"digits: {len(data)} images of 8x8 pixels, 10 classes → train {len(train)}, "
                  f"val {len(val)}, test {len(test)}")
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for label, weights in (("pretrained", None), ("random init", "random")):
        for regime, subset in ((f"all {len(train)} training images", train), ("10 images per class", few)):
            clf = TransferClassifier(backbone=backbone, weights=weights, seed=seed, precision=precision)
            clf.fit(subset, X_val=val.items, y_val=val.labels)
            metrics = clf.evaluate(test)
            results[(label, regime)] = metrics
            if weights is None and subset is train:
                clf.save(out / "model", metrics=metrics, overwrite=True)
                for table in metrics_tables(metrics, title=f"{backbone} (pretrained) + linear head, test"):
                    console.print(table)
    table = Table(title=f"digits, test accuracy of a linear head on frozen {backbone} features")
    for col, justify in (("backbone weights", "left"), ("training data", "left"), ("accuracy", "right"),
                         ("balanced accuracy", "right"), ("macro-F1", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for (label, regime), m in results.items():
        table.add_row(label, regime, f"{m['accuracy']:.2%}", f"{m['balanced_accuracy']:.2%}", f"{m['macro_f1']:.3f}")
    console.print(table)
    for regime in dict.fromkeys(r for _, r in results):
        gain = results[("pretrained", regime)]["accuracy"] - results[("random init", regime)]["accuracy"]
        console.print(f"pretrained minus random init, {regime}: {100 * gain:+.1f} points of accuracy")
    console.print(f"model (pretrained, all training images) saved in {out / 'model'}")
    return {f"{label} / {regime}": m for (label, regime), m in results.items()}
