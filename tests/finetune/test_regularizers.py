"""L2-SP (`finetune.regularizers`, through the LightningModule's `regularizer`) against its formula."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from transferkit.backbones import create_backbone
from transferkit.finetune.model import FinetuneModel
from transferkit.finetune.module import FinetuneModule
from transferkit.heads import parse_head


def test_l2sp_matches_its_formula(tiny: Any) -> None:
    torch.manual_seed(0)
    backbone = create_backbone("test_efficientnet", weights="random", seed=0)
    model = FinetuneModel(backbone, parse_head("linear"), 3)
    alpha, beta = 0.3, 0.07
    module = FinetuneModule(model, tiny(freeze="full", l2sp_alpha=alpha, l2sp_beta=beta).config)
    reference = {n: p.detach().clone() for n, p in model.backbone.named_parameters()}
    assert float(module.regularizer()) == pytest.approx(
        beta / 2 * sum(float((p**2).sum()) for p in model.head.parameters())
    )
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    by_hand = alpha / 2 * sum(float(((p - reference[n]) ** 2).sum()) for n, p in model.backbone.named_parameters())
    by_hand += beta / 2 * sum(float((p**2).sum()) for p in model.head.parameters())
    assert float(module.regularizer()) == pytest.approx(by_hand, rel=1e-4)
    # frozen weights do not count (they cannot move), and the data loss is unchanged by L2-SP
    module.set_trainable_groups(0)
    assert float(module.regularizer()) == pytest.approx(
        beta / 2 * sum(float((p**2).sum()) for p in model.head.parameters()), rel=1e-4
    )
    plain = FinetuneModule(model, tiny().config)
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    assert torch.equal(module.data_loss(logits, target), plain.data_loss(logits, target))
    assert float(plain.regularizer()) == 0.0
