"""Small Lightning callbacks of the fine-tuning engine (the freeze schedule has its own file)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl


class FreezeRecorder(pl.Callback):
    """Records the trainable parameter count at the start of each epoch (for the report and the tests)."""

    def __init__(self, record: dict[int, int]) -> None:
        self.record = record

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.record[trainer.current_epoch] = pl_module.trainable_parameter_count()


class LrInCheckpoint(pl.Callback):
    """Stores the base LR (possibly found by `--lr auto`) in each checkpoint, so that a resume reuses it."""

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        checkpoint["transferkit_lr"] = float(pl_module.lr)
