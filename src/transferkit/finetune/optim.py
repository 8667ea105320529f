"""Optimiser parameter groups with discriminative learning rates, and the LR schedule.

Backbone group i of G (`Backbone.layer_groups()`, input → output) gets lr · layer_decay^(G − i):
layers near the input, which hold the most general features, move least (ULMFiT's
discriminative fine-tuning). The head gets lr. Biases and norm weights get no weight decay.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeAlias

import torch
from torch import nn

if TYPE_CHECKING:
    from transferkit.backbones.contract import Backbone

#: one of torch.optim's parameter groups ("params", "lr", "weight_decay", our "name"): torch's own type for them
ParamGroup: TypeAlias = dict[str, Any]


def backbone_group_params(backbone: Backbone) -> list[list[tuple[str, nn.Parameter]]]:
    """(name, parameter) lists per layer group, input → output; uncovered parameters join group 0."""
    names = {id(p): n for n, p in backbone.named_parameters()}
    seen: set[int] = set()
    groups: list[list[tuple[str, nn.Parameter]]] = []
    for module in backbone.layer_groups():
        group = []
        for p in module.parameters():
            if id(p) in names and id(p) not in seen:
                seen.add(id(p))
                group.append((names[id(p)], p))
        if group:
            groups.append(group)
    leftover = [(n, p) for n, p in backbone.named_parameters() if id(p) not in seen]
    if leftover:
        if groups:
            groups[0] = leftover + groups[0]
        else:
            groups.append(leftover)
    return groups


def _split_decay(params: list[tuple[str, nn.Parameter]], lr: float, wd: float, tag: str) -> list[ParamGroup]:
    decay = [p for n, p in params if p.ndim > 1]
    no_decay = [p for n, p in params if p.ndim <= 1]
    out = []
    if decay:
        out.append({"params": decay, "lr": lr, "weight_decay": wd, "name": f"{tag}"})
    if no_decay:
        out.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{tag}.no_decay"})
    return out


def parameter_groups(
    group_params: list[list[tuple[str, nn.Parameter]]],
    head: nn.Module,
    *,
    lr: float,
    layer_decay: float,
    weight_decay: float,
    peft_params: list[tuple[str, nn.Parameter]] | None = None,
    backbone_scale: float = 1.0,
) -> list[ParamGroup]:
    """Optimiser groups: the head at `lr`, backbone groups at decayed LRs times `backbone_scale`
    (PEFT parameters at `lr`)."""
    groups = _split_decay(list(head.named_parameters()), lr, weight_decay, "head")
    if peft_params is not None:
        return groups + _split_decay(peft_params, lr, weight_decay, "peft")
    n = len(group_params)
    for i, params in enumerate(group_params):
        groups += _split_decay(params, lr * backbone_scale * layer_decay ** (n - i), weight_decay, f"backbone.{i}")
    return groups


#: LP-FT's backbone learns at this fraction of its usual rate. Its head starts as the fitted probe,
#: so the network starts where the probe ended (Kumar et al., ICLR 2022) — but AdamW's first steps
#: move every backbone weight by about its full learning rate, however small its gradient (the
#: update is m/√v ≈ sign(g)), and at the usual rates those steps alone undid the probe: 3 colours
#: × 8 images, EfficientNet-Lite0, a probe at 100% on validation fell to 75% after the first epoch
#: and 25% after the second; with the backbone at a tenth (the head as before), 100% at both.
LPFT_BACKBONE_LR = 0.1


def make_optimizer(name: str, groups: list[ParamGroup], lr: float) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)


class WarmupCosine:
    """LR factor: linear warm-up over `warmup` steps, then cosine to 0 at `total` (picklable)."""

    def __init__(self, total: int, warmup: int, cosine: bool) -> None:
        self.total, self.warmup, self.cosine = max(1, total), max(0, warmup), cosine

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        if not self.cosine:
            return 1.0
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))
