"""The LightningModule: which parameters train at each freeze depth (the head always), BatchNorm
statistics that stay put while their layers train, the class-weighted, smoothed loss, and the
per-epoch reseeding that lets a resumed run draw what the uninterrupted one drew."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from transferkit.backbones import create_backbone
from transferkit.finetune.config import FinetuneConfig
from transferkit.finetune.model import FinetuneModel
from transferkit.finetune.module import FinetuneModule
from transferkit.heads import parse_head


def _module(**config: object) -> FinetuneModule:
    backbone = create_backbone("test_efficientnet", weights="random", seed=0)
    return FinetuneModule(FinetuneModel(backbone, parse_head("dense:N"), 3), FinetuneConfig(**config))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def module() -> FinetuneModule:
    return _module()


def test_the_top_k_groups_and_the_head_train(module: FinetuneModule) -> None:
    groups = module.group_params
    assert len(groups) >= 3
    head = sum(p.numel() for p in module.model.head.parameters())
    module.set_trainable_groups(0)
    assert module.trainable_parameter_count() == head
    module.set_trainable_groups(2)
    trainable = [all(p.requires_grad for _, p in g) for g in groups]
    assert trainable == [False] * (len(groups) - 2) + [True, True]
    top_two = sum(p.numel() for g in groups[-2:] for _, p in g)
    assert module.trainable_parameter_count() == head + top_two and module.unfrozen == 2


def test_batchnorm_statistics_stay_frozen_in_training_mode(module: FinetuneModule) -> None:
    module.set_trainable_groups(len(module.group_params))
    module.train()
    bns = [m for m in module.model.backbone.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(m.training for m in bns) and module.model.head.training
    updating = _module(bn_stats="update", frozen_bn="train").train()
    assert all(m.training for m in updating.model.backbone.modules() if isinstance(m, _BatchNorm))


def test_the_loss_weighs_classes_and_smooths_labels(module: FinetuneModule) -> None:
    logits, y = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]]), torch.tensor([0, 2])
    plain = module.data_loss(logits, y)
    assert plain == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)))
    weighted = _module()
    weighted.class_weights = torch.tensor([1.0, 1.0, 5.0])
    assert weighted.data_loss(logits, y) > plain  # the wrong sample's class weighs more
    assert _module(label_smoothing=0.2).data_loss(logits[:1], y[:1]) > module.data_loss(logits[:1], y[:1])


def test_each_epoch_reseeds_from_seed_and_epoch(module: FinetuneModule, monkeypatch: pytest.MonkeyPatch) -> None:
    def draw(epoch: int, batch_idx: int = 0) -> float:
        monkeypatch.setattr(FinetuneModule, "trainer", SimpleNamespace(current_epoch=epoch, global_rank=0))
        module.on_train_batch_start(None, batch_idx)
        return float(torch.rand(()))

    torch.manual_seed(123)
    assert draw(1) == draw(1) != draw(2)
    torch.manual_seed(5)
    before = torch.rand(())
    torch.manual_seed(5)
    assert draw(1, batch_idx=3) == float(before)  # not the epoch's first batch: the RNG is left alone
