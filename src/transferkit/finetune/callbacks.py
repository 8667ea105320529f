"""Small Lightning callbacks of the fine-tuning engine (the freeze schedule has its own file)."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl

from transferkit.finetune.checkpoint import Checkpoint


class FreezeRecorder(pl.Callback):
    """Records the trainable parameter count at the start of each epoch (for the report and the tests)."""

    def __init__(self, record: dict[int, int]) -> None:
        self.record = record

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.record[trainer.current_epoch] = pl_module.trainable_parameter_count()


class LrInCheckpoint(pl.Callback):
    """Stores the base LR (possibly found by `--lr auto`) in each checkpoint, so that a resume reuses it."""

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: Any, checkpoint: Checkpoint) -> None:
        checkpoint["transferkit_lr"] = float(pl_module.lr)


class EpochClock(pl.Callback):
    """Wall seconds of training at the end of each epoch, with the validation accuracy then: what
    each minute of fine-tuning bought (the report draws it). `record[epoch] = (seconds, val_accuracy
    or None)`, epochs from 0. A resumed run carries on from the seconds and epochs its checkpoint
    holds."""

    def __init__(self, record: dict[int, tuple[float, float | None]]) -> None:
        self.record = record
        self.offset = 0.0
        self.started: float | None = None

    def elapsed(self) -> float:
        return self.offset + (time.perf_counter() - self.started if self.started is not None else 0.0)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.started is None:
            return
        accuracy = trainer.callback_metrics.get("val_accuracy")
        self.record[trainer.current_epoch] = (self.elapsed(), float(accuracy) if accuracy is not None else None)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.record.setdefault(trainer.current_epoch, (self.elapsed(), None))  # no validation this epoch

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: Checkpoint) -> None:
        checkpoint["transferkit_seconds"] = self.elapsed()
        checkpoint["transferkit_timeline"] = [[e, s, a] for e, (s, a) in sorted(self.record.items())]

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: Checkpoint) -> None:
        self.offset = float(checkpoint.get("transferkit_seconds", 0.0))
        for epoch, seconds, accuracy in checkpoint.get("transferkit_timeline", []):
            self.record[int(epoch)] = (float(seconds), None if accuracy is None else float(accuracy))


class EpochMetric(pl.Callback):
    """Records a logged epoch metric (e.g. `train_mcc`) at the end of each training epoch: `record[epoch]`."""

    def __init__(self, name: str, record: dict[int, float]) -> None:
        self.name, self.record = name, record

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.name)
        if value is not None:
            self.record[trainer.current_epoch] = float(value)
