"""Data for fine-tuning: a Lightning DataModule over raw inputs and integer labels.

Workers decode (and, for training, augment) each input with the backbone's picklable loader;
the main process collates a batch with `Backbone.collate` in `on_before_batch_transfer`, so no
model weights are ever pickled into workers. Unreadable inputs are dropped from their batch and
counted.

Reproducibility, including across `--resume`: the sampler's order depends only on (seed, epoch),
and each sample's augmentation is seeded from (seed, epoch, position), whatever worker loads it.
Under DDP the sampler shards the order itself (rank r takes every world-th index).

With unlabelled target inputs (`target`, fine-tuning with `--adapt-to`), each training batch is a
pair `{"source": (x, y), "target": x_t}`: a target batch drawn beside every labelled one, from
seeded passes over the target inputs (`TargetSampler`), as many as the labelled batches of the epoch.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from lightning.pytorch.utilities import CombinedLoader

    from transferkit.backbones.contract import Backbone

import lightning.pytorch as pl
import numpy as np
import torch

from transferkit.errors import InputError


@dataclass(frozen=True)
class Augment:
    """timm training augmentation settings (see `timm.data.create_transform`)."""

    scale_min: float = 0.08
    hflip: float = 0.5
    color_jitter: float = 0.4


class AugmentedImageLoader:
    """Path → augmented uint8 CHW tensor: timm's train transforms minus ToTensor/Normalize."""

    def __init__(self, preprocess: Any, augment: Augment) -> None:
        from timm.data import create_transform

        self.cfg = preprocess
        primary, secondary, _final = create_transform(
            preprocess.input_size,
            is_training=True,
            scale=(augment.scale_min, 1.0),
            hflip=augment.hflip,
            # timm skips colour jitter for None, though its annotation leaves None out
            color_jitter=augment.color_jitter or None,  # type: ignore[arg-type]
            interpolation=preprocess.interpolation,
            separate=True,
        )
        self.transforms = [*primary.transforms, *secondary.transforms]

    def __call__(self, item: Any) -> torch.Tensor:
        from PIL import Image

        from transferkit.data.images import open_image

        img = open_image(item, max_pixels=self.cfg.max_pixels)
        size = self.cfg.input_size
        if min(img.size) < size and self.cfg.small_image == "resize_whole":
            img = img.resize((size, size), Image.Resampling.BICUBIC)  # small images: no crop of edges
        for t in self.transforms:
            img = t(img)
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy())


class SeededSampler(torch.utils.data.Sampler):
    """Yields (index, sample_seed); the order depends on (seed, epoch) only. Shards for DDP.

    `weights` (per sample) draws with replacement in proportion: the balanced sampler.
    """

    def __init__(
        self,
        n: int,
        *,
        seed: int,
        shuffle: bool,
        weights: np.ndarray | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.n, self.seed, self.shuffle, self.weights = n, seed, shuffle, weights
        self.rank, self.world = rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.n // self.world)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            w = torch.as_tensor(self.weights, dtype=torch.double)
            order = torch.multinomial(w, self.n, replacement=True, generator=g).tolist()
        elif self.shuffle:
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = len(self) * self.world
        order = order + order[: total - len(order)]  # pad so that every rank gets as many
        base = (self.seed * 1_000_003 + self.epoch * 65_537) % (2**31)
        for pos in range(self.rank, total, self.world):
            yield order[pos], (base + pos) % (2**31)


class TargetSampler(SeededSampler):
    """Yields `length` (index, sample_seed) over the target inputs: seeded permutations of them, one
    after another, cut to the labelled sampler's length (so that each labelled batch gets a target
    batch); the order depends on (seed, epoch) only, like the labelled sampler's."""

    def __init__(self, n: int, length: int, *, seed: int, rank: int = 0, world: int = 1) -> None:
        super().__init__(n, seed=seed, shuffle=True, rank=rank, world=world)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch + 7_919)
        order: list[int] = []
        total = self.length * self.world  # every rank draws its own share of one order
        while len(order) < total:
            order += torch.randperm(self.n, generator=g).tolist()
        base = (self.seed * 1_000_003 + self.epoch * 65_537 + 104_729) % (2**31)
        for pos in range(self.rank, total, self.world):
            yield order[pos], (base + pos) % (2**31)


class SampleDataset(torch.utils.data.Dataset):
    """(index, seed) → (sample or None, label); the loader runs under the sample's own RNG seed."""

    def __init__(self, items: Sequence[object], labels: Sequence[int], loader: Callable[[object], object],
                 seeded: bool) -> None:
        self.items, self.labels, self.loader, self.seeded = list(items), list(labels), loader, seeded

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[object, int]:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        try:
            if self.seeded:
                state = random.getstate()
                with torch.random.fork_rng(devices=[]):
                    random.seed(seed)
                    torch.manual_seed(seed)
                    sample = self.loader(self.items[index])
                random.setstate(state)
            else:
                sample = self.loader(self.items[index])
        except InputError:
            sample = None
        return sample, self.labels[index]


def keep_pairs(batch: list[tuple[object, int]]) -> list[tuple[object, int]]:
    return batch


class FinetuneData(pl.LightningDataModule):
    """Train / val (/ predict) loaders over raw items; collation by the backbone in the main process."""

    def __init__(
        self,
        backbone: Backbone,
        train: tuple[Sequence[object], Sequence[int]],
        val: tuple[Sequence[object], Sequence[int]] | None,
        *,
        batch_size: int,
        seed: int,
        augment: Augment | None,
        sample_weights: np.ndarray | None = None,
        num_workers: int | None = None,
        target: Sequence[object] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.train_items, self.val_items = train, val
        self.target_items = list(target) if target is not None and len(target) else None
        self.batch_size, self.seed = batch_size, seed
        self.augment, self.sample_weights = augment, sample_weights
        self.num_workers = num_workers
        self.dropped = 0
        self.dropped_target = 0

    def _workers(self, n: int) -> int:
        if self.num_workers is not None:
            return self.num_workers
        import os

        return 0 if n < 64 else max(1, min(4, (os.cpu_count() or 1) // 2))

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def train_loader_fn(self) -> Callable[[object], object]:
        if self.augment is not None and self.backbone.modality == "image":
            return AugmentedImageLoader(self.backbone.preprocess_cfg, self.augment)
        return self.backbone.sample_loader()

    def _loader(self, items: Sequence[object], labels: Sequence[int], train: bool) -> torch.utils.data.DataLoader:
        rank, world = self._rank_world()
        loader_fn = self.train_loader_fn() if train else self.backbone.sample_loader()
        workers = self._workers(len(items))
        return torch.utils.data.DataLoader(
            SampleDataset(items, labels, loader_fn, seeded=train),
            batch_size=self.batch_size,
            sampler=SeededSampler(
                len(items),
                seed=self.seed,
                shuffle=train,
                weights=self.sample_weights if train else None,
                rank=rank,
                world=world,
            ),
            num_workers=workers,
            collate_fn=keep_pairs,
            persistent_workers=workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> torch.utils.data.DataLoader | CombinedLoader:
        source = self._loader(*self.train_items, train=True)
        if self.target_items is None:
            return source
        from lightning.pytorch.utilities import CombinedLoader

        items = self.target_items
        rank, world = self._rank_world()
        workers = self._workers(len(items))
        target = torch.utils.data.DataLoader(
            SampleDataset(items, [-1] * len(items), self.train_loader_fn(), seeded=True),
            batch_size=self.batch_size,
            sampler=TargetSampler(len(items), len(source.sampler),  # type: ignore[arg-type]
                                  seed=self.seed, rank=rank, world=world),
            num_workers=workers,
            collate_fn=keep_pairs,
            persistent_workers=workers > 0,
            drop_last=False,
        )
        return CombinedLoader({"source": source, "target": target}, mode="min_size")

    def val_dataloader(self) -> torch.utils.data.DataLoader | list[torch.utils.data.DataLoader]:
        if not self.val_items or not len(self.val_items[0]):
            return []
        return self._loader(*self.val_items, train=False)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict):  # a labelled batch and a target batch beside it
            source = self.on_before_batch_transfer(batch["source"], dataloader_idx)
            good_t = [s for s, _ in batch["target"] if s is not None]
            self.dropped_target += len(batch["target"]) - len(good_t)
            return {"source": source, "target": self.backbone.collate(good_t) if good_t else None}
        good = [(s, y) for s, y in batch if s is not None]
        self.dropped += len(batch) - len(good)
        if not good:
            return None
        x = self.backbone.collate([s for s, _ in good])
        return x, torch.tensor([y for _, y in good], dtype=torch.long)
