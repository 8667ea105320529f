"""Training images/s: our Lightning engine against a plain PyTorch loop, same run, same everything.

Both train the same network (EfficientNet-Lite0 architecture, random init, all layers trainable)
with the same batches (the same DataModule: decode, collate, normalise), batch size, optimiser
parameter groups, precision (bf16 autocast where the CPU supports it) and channels_last layout.
Throughput is measured after `--warmup` steps, per epoch, best of `--repeats` alternating rounds.

    .venv/bin/python benchmarks/finetune.py            # prints both figures and the ratio
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def write_images(root: Path, n: int, size: int = 224) -> tuple[list[str], list[str]]:
    from PIL import Image

    rng = np.random.default_rng(0)
    items, labels = [], []
    for i in range(n):
        label = i % 4
        pixels = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
        pixels[..., label % 3] = np.clip(pixels[..., label % 3].astype(int) + 60, 0, 255)
        path = root / f"{i:04d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        items.append(str(path))
        labels.append(str(label))
    return items, labels


class Meter:
    """Images/s from the end of step `warmup` to the end of the epoch's last step (steps only:
    the engine's end-of-epoch checkpoint write is not counted, the plain loop has none)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.rates = warmup, []  # type: ignore[var-annotated]
        self.t0: float | None = None
        self.t_last = 0.0
        self.n = 0

    def step(self, index: int, batch_size: int) -> None:
        now = time.perf_counter()
        if index == self.warmup - 1:
            self.t0, self.n = now, 0
        elif self.t0 is not None:
            self.n += batch_size
            self.t_last = now

    def epoch_end(self) -> None:
        if self.t0 is not None and self.n:
            self.rates.append(self.n / (self.t_last - self.t0))
        self.t0 = None


def engine_rate(clf: Any, items: list[str], labels: list[str], warmup: int) -> float:
    import lightning.pytorch as pl
    from sklearn.base import clone

    meter = Meter(warmup)

    class Timer(pl.Callback):
        def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            meter.step(batch_idx, len(batch[1]))

        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            meter.epoch_end()

    clone(clf).fit(items, labels, callbacks=[Timer()])
    return max(meter.rates)


def plain_rate(clf: Any, items: list[str], labels: list[str], warmup: int) -> float:
    """What a user writes by hand: the same model, batches, optimiser groups and autocast."""
    from transferkit.finetune.datamodule import FinetuneData
    from transferkit.finetune.model import FinetuneModel
    from transferkit.finetune.optim import backbone_group_params, make_optimizer, parameter_groups
    from transferkit.finetune.trainer import lightning_precision
    from transferkit.heads import parse_head

    cfg = clf.config
    torch.manual_seed(clf.seed)
    backbone = clf._build_backbone(cfg)  # same factory (and input size) as the engine
    classes = sorted(set(labels))
    y = [classes.index(label) for label in labels]
    model = FinetuneModel(backbone, parse_head(clf.head), len(classes)).to(memory_format=torch.channels_last)
    groups = parameter_groups(
        backbone_group_params(backbone),
        model.head,
        lr=float(cfg.lr),
        layer_decay=cfg.layer_decay,
        weight_decay=cfg.weight_decay,
    )
    optimizer = make_optimizer(cfg.optimizer, groups, float(cfg.lr))
    dm = FinetuneData(
        backbone, (items, y), None, batch_size=clf.batch_size, seed=clf.seed, augment=None, num_workers=cfg.num_workers
    )
    bf16 = lightning_precision(clf.precision, "cpu") == "bf16-mixed"
    meter = Meter(warmup)
    model.train()
    for _ in range(cfg.epochs):
        for i, raw in enumerate(dm.train_dataloader()):
            x, target = dm.on_before_batch_transfer(raw, 0)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            meter.step(i, len(target))
        meter.epoch_end()
    return max(meter.rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--input-size", type=int, default=224)
    args = parser.parse_args()

    from transferkit.estimators.finetuned import FinetunedClassifier
    from transferkit.finetune.config import FinetuneConfig

    cfg = FinetunedClassifier(args.backbone, weights="random", batch_size=args.batch_size, progress=False,
                              training=FinetuneConfig(freeze="full", epochs=args.epochs, lr=1e-3, augment=False,
                                                      patience=0, scheduler="constant", num_workers=1,
                                                      input_size=args.input_size))
    with tempfile.TemporaryDirectory() as tmp:
        items, labels = write_images(Path(tmp), args.images)
        ours, plain = [], []
        for _ in range(args.repeats):  # alternate, so that machine load hits both alike
            plain.append(plain_rate(cfg, items, labels, args.warmup))
            ours.append(engine_rate(cfg, items, labels, args.warmup))
    from transferkit.finetune.trainer import lightning_precision

    print(
        f"{args.backbone} (random init, all layers trainable), batch {args.batch_size}, "
        f"{lightning_precision(cfg.precision, 'cpu')}, channels_last, {args.input_size}px, "
        f"{args.images} images x {args.epochs} epochs"
    )
    print(f"plain PyTorch loop : {max(plain):7.1f} images/s   (rounds: {', '.join(f'{r:.1f}' for r in plain)})")
    print(f"transferkit engine : {max(ours):7.1f} images/s   (rounds: {', '.join(f'{r:.1f}' for r in ours)})")
    print(f"ratio engine/plain : {max(ours) / max(plain):.2f}x  (target >= 0.9x)")


if __name__ == "__main__":
    main()
