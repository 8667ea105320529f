"""Freeze schedules as a Lightning callback whose state survives resume.

- `frozen`: only the head trains (feature extraction, the Keras `base.trainable = False`).
- `full`: everything trains from the first epoch.
- `gradual`: the head alone for `head_epochs`, then `unfreeze_per_epoch` more backbone groups
  each epoch from the top (ULMFiT's gradual unfreezing; fastai's `fine_tune`).

Groups come from `Backbone.layer_groups()` (input → output). Freezing is `requires_grad=False`;
the optimiser holds every parameter from the start and skips those without gradients, so
unfreezing needs no optimiser surgery and resumes exactly. BatchNorm layers whose weights are
frozen are kept in eval mode (running statistics fixed) unless `frozen_bn="train"`.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from transferkit.errors import ConfigError
from transferkit.finetune.checkpoint import Checkpoint


def trainable_groups(mode: str, epoch: int, n_groups: int, head_epochs: int, per_epoch: int) -> int:
    """How many backbone groups (counted from the top) train in `epoch` (0-based)."""
    if mode == "frozen":
        return 0
    if mode == "full":
        return n_groups
    if epoch < head_epochs:
        return 0
    return min(n_groups, (epoch - head_epochs + 1) * per_epoch)


def set_frozen_bn_eval(module: nn.Module) -> None:
    """Put every BatchNorm whose scale is frozen in eval mode (stats stop moving).

    The scale decides, not the bias: under BitFit only biases train, and the statistics must stay
    those of the pretrained backbone (the bundle stores only the trained tensors)."""
    for m in module.modules():
        if not isinstance(m, _BatchNorm):
            continue
        weight = m.weight if isinstance(m.weight, torch.Tensor) else None
        frozen = (
            not weight.requires_grad
            if weight is not None
            else not any(p.requires_grad for p in m.parameters(recurse=False))
        )
        if frozen:
            m.eval()


class FreezeSchedule(pl.Callback):
    """Applies the schedule at the start of every training epoch; saved in checkpoints."""

    def __init__(self, mode: str, head_epochs: int = 1, unfreeze_per_epoch: int = 1) -> None:
        self.mode = mode
        self.head_epochs = head_epochs
        self.unfreeze_per_epoch = unfreeze_per_epoch
        #: backbone groups trainable now (from the top), and the epoch it was set for
        self.unfrozen = 0
        self.epoch = -1

    def apply(self, pl_module: Any, epoch: int) -> None:
        n = len(pl_module.group_params)
        self.unfrozen = trainable_groups(self.mode, epoch, n, self.head_epochs, self.unfreeze_per_epoch)
        self.epoch = epoch
        pl_module.set_trainable_groups(self.unfrozen)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.apply(pl_module, max(trainer.current_epoch, 0))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.apply(pl_module, trainer.current_epoch)

    def state_dict(self) -> Checkpoint:
        return {
            "mode": self.mode,
            "head_epochs": self.head_epochs,
            "unfreeze_per_epoch": self.unfreeze_per_epoch,
            "unfrozen": self.unfrozen,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: Checkpoint) -> None:
        saved = (state.get("mode"), state.get("head_epochs"), state.get("unfreeze_per_epoch"))
        if saved != (self.mode, self.head_epochs, self.unfreeze_per_epoch):
            raise ConfigError(
                f"the checkpoint was trained with freeze schedule {saved}, this run asks for "
                f"{(self.mode, self.head_epochs, self.unfreeze_per_epoch)}; resume with the same schedule"
            )
        self.unfrozen = int(state.get("unfrozen", 0))
        self.epoch = int(state.get("epoch", -1))
