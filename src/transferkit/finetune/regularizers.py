"""L2-SP: weight decay toward the pretrained starting point instead of toward zero.

Li, Grandvalet & Davoine, "Explicit Inductive Bias for Transfer Learning with Convolutional
Networks", ICML 2018:

    Ω(w) = α/2 · ‖w_S − w_S⁰‖²  +  β/2 · ‖w_S̄‖²

w_S are the backbone's (pretrained) weights, w_S⁰ their values before fine-tuning, w_S̄ the new
head's weights. On small data it keeps the fine-tuned backbone close to what transferred well.
The starting point is kept as buffers so that it travels with checkpoints (exact resume).
"""

from __future__ import annotations

import torch
from torch import nn


class L2SP(nn.Module):
    """Computes Ω(w) for a backbone and a head; the reference w_S⁰ is copied at construction."""

    def __init__(self, backbone: nn.Module, head: nn.Module, alpha: float, beta: float) -> None:
        super().__init__()
        self.alpha, self.beta = float(alpha), float(beta)
        self._names: list[str] = []
        self._backbone = [backbone]  # a list: not registered as a sub-module (no duplicate weights)
        self._head = [head]
        for i, (name, p) in enumerate(backbone.named_parameters()):
            self._names.append(name)
            self.register_buffer(f"ref_{i}", p.detach().clone())

    def forward(self) -> torch.Tensor:
        backbone, head = self._backbone[0], self._head[0]
        params = dict(backbone.named_parameters())
        total = torch.zeros((), device=next(head.parameters()).device)
        if self.alpha:
            sp = [
                ((params[n] - getattr(self, f"ref_{i}")) ** 2).sum()
                for i, n in enumerate(self._names)
                if params[n].requires_grad
            ]
            if sp:
                total = total + self.alpha / 2 * torch.stack(sp).sum()
        if self.beta:
            total = total + self.beta / 2 * torch.stack([(p**2).sum() for p in head.parameters()]).sum()
        return total
