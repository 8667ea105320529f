"""Minimum class confusion (`finetune.mcc`): against its formula, and lower once trained on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transferkit.finetune.mcc import minimum_class_confusion


# -- the MCC loss ---------------------------------------------------------------------------------
def test_mcc_against_the_formula() -> None:
    z = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [0.0, 0.0, 2.5]])
    p = torch.softmax(z / 2.5, 1)
    h = -(p * torch.log(p + 1e-5)).sum(1)
    w = 1 + torch.exp(-h)
    w = 4 * w / w.sum()
    c = sum(w[i] * torch.outer(p[i], p[i]) for i in range(4))
    c = c / c.sum(1, keepdim=True)
    expected = (c.sum() - c.trace()) / 3
    assert minimum_class_confusion(z).item() == pytest.approx(expected.item(), rel=1e-6)
    confident = torch.eye(3) * 40.0  # three confident predictions of three different classes
    assert minimum_class_confusion(confident) < 0.01 < minimum_class_confusion(torch.zeros(3, 3))


def test_mcc_decreases_when_trained_on() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    head = nn.Linear(5, 4)
    opt = torch.optim.Adam(head.parameters(), lr=0.1)
    losses = []
    for _ in range(60):
        loss = minimum_class_confusion(head(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
