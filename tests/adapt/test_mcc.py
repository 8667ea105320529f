"""`adapt.mcc`: the MCC loss against its formula and lower once trained on (fine-tuning with a target
trains on it too); the linear head fine-tuned with Minimum Class Confusion on fixed target features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from transferkit.adapt.mcc import mcc_head, minimum_class_confusion
from transferkit.errors import ConfigError
from transferkit.heads import build_head, parse_head, train_probe


def _domains(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Three classes on a line in 2-d; the target moved along it (its inputs sit across the source's boundaries)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-3.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    y = np.repeat(np.arange(3), 60)
    source = (centres[y] + rng.normal(size=(len(y), 2)) * 0.6).astype(np.float32)
    target = (centres[y] + rng.normal(size=(len(y), 2)) * 0.6 + [1.2, 0.0]).astype(np.float32)
    return source, y, target, y.copy()


def _logits(head: torch.nn.Module, x: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return head(torch.from_numpy(x))


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


def test_mcc_lowers_the_targets_confusion_where_source_training_alone_does_not(monkeypatch) -> None:
    source, y, target, _ = _domains()
    probe = train_probe(parse_head("linear"), source, y, source[:0], y[:0], 3, class_weight="none", seed=0)
    before = minimum_class_confusion(_logits(probe.head, target)).item()
    adapted = mcc_head(probe.head, source, y, target, seed=0)
    after = minimum_class_confusion(_logits(adapted, target)).item()
    import transferkit.adapt.mcc as mcc

    monkeypatch.setattr(mcc, "TRADEOFF", 0.0)  # the same schedule, cross-entropy alone
    source_only = minimum_class_confusion(_logits(mcc_head(probe.head, source, y, target, seed=0), target)).item()
    assert after < 0.85 * before and after < 0.95 * source_only


def test_the_head_is_an_ordinary_linear_head_seeded_and_the_given_one_untouched() -> None:
    source, y, target, _ = _domains(1)
    probe = train_probe(parse_head("linear"), source, y, source[:0], y[:0], 3, class_weight="none", seed=0)
    weight = probe.head[1].weight.detach().clone()
    first = mcc_head(probe.head, source, y, target, seed=3)
    again = mcc_head(probe.head, source, y, target, seed=3)
    assert [type(m).__name__ for m in first] == ["Standardize", "Linear"]
    assert torch.equal(first[1].weight, again[1].weight) and torch.equal(first[1].bias, again[1].bias)
    assert torch.equal(probe.head[1].weight, weight) and not torch.equal(first[1].weight, weight)
    assert torch.equal(first[0].mean, probe.head[0].mean) and torch.equal(first[0].std, probe.head[0].std)


def test_a_head_that_is_not_linear_is_refused() -> None:
    source, y, target, _ = _domains()
    mlp = build_head(parse_head("mlp"), 2, 3)
    with pytest.raises(ConfigError, match="linear head"):
        mcc_head(mlp, source, y, target, seed=0)
