"""The set-up `digits_finetune.py` and `finetune_target.py` share: their flags, and scikit-learn's digits
written as images and drawn per class (`--per-class` training and 5 validation images, by the seed)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np


def parser(doc: str | None, *, out: str, per_class: int, epochs: int) -> argparse.ArgumentParser:
    """The flags both benchmarks take, with each one's defaults (224 px: at 96 px, 3 epochs, 10 per class a
    plain fine-tune stayed at chance, 12%)."""
    p = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(out))
    p.add_argument("--per-class", type=int, default=per_class)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-size", type=int, default=224)
    return p


def digits_split(out: Path, per_class: int, seed: int) -> tuple[Any, list[int], list[int], list[int],
                                                                np.random.Generator]:
    """(the digits as a LabelledData, training indices, validation indices, every other index in order, and
    the seeded generator after these draws — for a caller's further draws)."""
    from transferkit.commands.demo import write_digits
    from transferkit.data import load_dataset

    data = load_dataset(write_digits(out / "images"))
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for cls in data.classes:
        idx = rng.permutation([i for i, label in enumerate(data.labels) if label == cls])
        train += idx[:per_class].tolist()
        val += idx[per_class: per_class + 5].tolist()
    rest = sorted(set(range(len(data))) - set(train) - set(val))
    return data, train, val, rest, rng


def finetune_settings(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """The fine-tuning settings both use: digits are not mirror-symmetric (no flips), colour is no cue."""
    return dict(epochs=args.epochs, lr=args.lr, input_size=args.input_size, aug_hflip=0.0, aug_scale_min=0.5,
                aug_color_jitter=0.0, patience=0, **extra)
