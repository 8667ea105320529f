"""The LightningModule: *what* is trained (loss, optimiser groups, freezing hooks).

The Trainer owns devices, precision, loops, checkpoints and logging. Freezing decisions come from
the `FreezeSchedule` callback through `set_trainable_groups`; PEFT parameters always train.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from transferkit.adapt.mcc import minimum_class_confusion
from transferkit.finetune.config import FinetuneConfig
from transferkit.finetune.freeze import set_frozen_bn_eval
from transferkit.finetune.model import FinetuneModel
from transferkit.finetune.optim import (
    LPFT_BACKBONE_LR,
    WarmupCosine,
    backbone_group_params,
    make_optimizer,
    parameter_groups,
)
from transferkit.finetune.peft import is_peft_parameter
from transferkit.finetune.regularizers import L2SP
from transferkit.jsontypes import JSONObject


class FinetuneModule(pl.LightningModule):
    """Backbone + head with cross-entropy (label smoothing, class weights) and optional L2-SP."""

    class_weights: torch.Tensor | None  # a non-persistent buffer (registered in __init__)

    def __init__(
        self,
        model: FinetuneModel,
        config: FinetuneConfig,
        *,
        seed: int = 0,
        class_weights: torch.Tensor | None = None,
        peft: JSONObject | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.seed = seed
        self.lr = float(config.lr) if config.lr != "auto" else 1e-3  # the LR finder updates this
        self.peft_info = peft
        self.peft_method = peft["method"] if peft else None
        self.group_params = backbone_group_params(model.backbone)
        self.peft_params = (
            [(n, p) for n, p in model.backbone.named_parameters() if is_peft_parameter(n, self.peft_method)]
            if self.peft_method
            else None
        )
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.l2sp = (
            L2SP(model.backbone, model.head, config.l2sp_alpha, config.l2sp_beta)
            if (config.l2sp_alpha or config.l2sp_beta)
            else None
        )
        self.channels_last = config.channels_last and model.backbone.modality == "image"
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.unfrozen = -1
        #: LP-FT: the head starts as the probe fitted on the frozen features (the backbone then learns slower)
        self.starts_from_probe = config.head_init == "probe" and not model.uses_feature_map

    # -- freezing ---------------------------------------------------------------------------------
    def set_trainable_groups(self, k: int) -> None:
        """Train the top `k` backbone groups (PEFT: only PEFT parameters, whatever `k`); head always."""
        n = len(self.group_params)
        for i, params in enumerate(self.group_params):
            for name, p in params:
                if self.peft_method:
                    p.requires_grad_(is_peft_parameter(name, self.peft_method))
                else:
                    p.requires_grad_(i >= n - k)
        for p in self.model.head.parameters():
            p.requires_grad_(True)
        self.unfrozen = k
        if self.training:
            self.train()

    def train(self, mode: bool = True) -> FinetuneModule:
        super().train(mode)
        if mode and self.config.bn_stats == "frozen":
            for m in self.model.backbone.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()  # the pretrained running statistics stay; weights and biases still train
        elif mode and self.config.frozen_bn == "eval":
            set_frozen_bn_eval(self.model.backbone)
        return self

    def trainable_parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def on_train_batch_start(self, batch: object, batch_idx: int) -> None:
        """At each epoch's first batch, reseed the global RNG (dropout, stochastic depth) from
        (seed, epoch, rank): a resumed run then draws exactly what the uninterrupted one drew.
        (Here, not at epoch start: the data loader's own draws happen in between.)"""
        if batch_idx == 0:
            epoch, rank = self.trainer.current_epoch, self.trainer.global_rank
            torch.manual_seed(self.seed * 1_000_003 + epoch * 1_009 + rank)

    # -- steps ------------------------------------------------------------------------------------
    def forward(self, x: object) -> torch.Tensor:
        if self.channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def data_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(
            logits.float(), y, weight=self.class_weights, label_smoothing=self.config.label_smoothing
        )

    def regularizer(self) -> torch.Tensor:
        if self.l2sp is None:
            return torch.zeros((), device=self.device)
        return self.l2sp()

    def target_loss(self, x_target: object) -> torch.Tensor:
        """Minimum Class Confusion on a batch of unlabelled target inputs (`transferkit.adapt.mcc`)."""
        return minimum_class_confusion(self(x_target), self.config.mcc_temperature)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        target = None
        if isinstance(batch, dict):  # {"source": (x, y) or None, "target": x_t or None}
            batch, target = batch["source"], batch["target"]
        if batch is None:
            return None
        x, y = batch
        logits = self(x)
        loss = self.data_loss(logits, y)
        if target is not None and self.config.target_weight > 0:
            mcc = self.target_loss(target)
            loss = loss + self.config.target_weight * mcc
            self.log("train_mcc", mcc, on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True)
        if self.l2sp is not None:
            loss = loss + self.regularizer()
        acc = (logits.argmax(1) == y).float().mean()
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log("train_accuracy", acc, on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if batch is None:
            return
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits.float(), y)
        acc = (logits.argmax(1) == y).float().mean()
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log("val_accuracy", acc, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)

    # -- optimisation -----------------------------------------------------------------------------
    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        cfg = self.config
        wd = 0.0 if self.l2sp is not None else cfg.weight_decay  # L2-SP replaces weight decay
        groups = parameter_groups(
            self.group_params,
            self.model.head,
            lr=self.lr,
            layer_decay=cfg.layer_decay,
            weight_decay=wd,
            peft_params=self.peft_params,
            backbone_scale=LPFT_BACKBONE_LR if self.starts_from_probe else 1.0,
        )
        optimizer = make_optimizer(cfg.optimizer, groups, self.lr)
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
        per_epoch = max(1, total // max(1, cfg.epochs))
        factor = WarmupCosine(total, int(cfg.warmup_epochs * per_epoch), cosine=cfg.scheduler == "cosine")
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
