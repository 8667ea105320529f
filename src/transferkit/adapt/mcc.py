"""Minimum Class Confusion on fixed features: the linear head fine-tuned on the unlabelled target (an option,
`--adapt-method mcc`; never part of `auto`).

MCC (Jin, Wang, Long & Wang, ECCV 2020) trains a classifier on labelled source batches (cross-entropy)
beside unlabelled target batches, whose loss is the *class confusion*: for a batch of target predictions
P (softmax at temperature T = 2.5), each row weighted by 1 + exp(−entropy) (certain predictions count
more), the class correlation C = Pᵀ W P, normalised per row, and the loss is the mass off its
diagonal divided by the number of classes — the head is pushed to stop spreading a target input over
two classes at once. The paper adapts a whole network; on a probe's fixed features the part before the
classifier that can move is the head's input map, so what is trained here is the linear layer and a
per-feature affine map (γ, β) on the head's standardised input (the normalisation's affine parameters,
as Tent adapts them; Wang et al., ICLR 2021), both started where the fitted head is. Afterwards the
affine map is folded into the linear layer — the result is an ordinary `Standardize + Linear` head, so
the bundle, `predict`, `serve` and the ONNX export carry it unchanged.

The stated schedule, chosen before any set was looked at and the same everywhere: T = 2.5 and
trade-off 1 (the paper's); SHOT's optimiser (Liang, Hu & Feng, ICML 2020: SGD, lr 0.01, momentum 0.9,
weight decay 1e-3) with batches of 64 target and 64 source rows, 15 passes over the target. Seeded:
the same seed, data and head give the same result on CPU.

Measured (`benchmarks/adapt_research.py`, the README's adaptation table): after James–Stein
standardisation it gained 2.0 points over it on unseen voices (speech) and 1.9 on unseen icon themes, and
lost 3.7 on the synopses of unseen packages (debtext) — so it is an explicit method, not `auto`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from transferkit.errors import ConfigError
from transferkit.heads.head_spec import Standardize

#: the paper's temperature and trade-off
TEMPERATURE = 2.5
TRADEOFF = 1.0
#: SHOT's optimiser and a schedule of 15 passes over the target in batches of 64
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 1e-3
BATCH, EPOCHS = 64, 15


def minimum_class_confusion(logits: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """L_MCC of a batch of target logits [B, C] (0 without confusion). With Ŷ = softmax(Z / T), each row
    weighted by w_i = B (1 + exp(−H(Ŷ_i))) / Σ_j (1 + exp(−H(Ŷ_j))) (the weights are constants of the
    step, as in the paper's code), C = Ŷᵀ diag(w) Ŷ normalised per row, the loss is the mass off the
    diagonal divided by the number of classes. Fine-tuning with a target (`finetune.module`) trains on it
    too."""
    if logits.dim() != 2:
        raise ValueError(f"expected logits of shape [batch, classes]; got {tuple(logits.shape)}")
    batch, classes = logits.shape
    probs = torch.softmax(logits.float() / temperature, dim=1)
    entropy = -(probs * torch.log(probs + 1e-5)).sum(1).detach()
    weight = 1.0 + torch.exp(-entropy)
    weight = batch * weight / weight.sum()
    confusion = (probs * weight[:, None]).T @ probs
    confusion = confusion / confusion.sum(dim=1, keepdim=True)
    return (confusion.sum() - confusion.trace()) / classes


def mcc_head(head: nn.Module, source: np.ndarray, labels: np.ndarray, target: np.ndarray, *, seed: int,
             class_weight: np.ndarray | None = None) -> nn.Sequential:
    """A copy of the linear `head` (`Standardize` then `Linear`) fine-tuned by MCC: source cross-entropy
    (weighted by `class_weight` per class, if given) + class confusion on `target` (already aligned, as the
    head will read it). `labels` are class indices. The head given is not changed."""
    if not (isinstance(head, nn.Sequential) and len(head) == 2 and isinstance(head[0], Standardize)
            and isinstance(head[1], nn.Linear)):
        raise ConfigError("--adapt-method mcc fine-tunes a linear head; this model's head is not linear "
                          "(use --head linear, or another --adapt-method)")
    if len(source) != len(labels):
        raise ValueError(f"{len(source)} source rows but {len(labels)} labels")
    standardize, linear = head[0], head[1]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        zs = standardize(torch.from_numpy(np.asarray(source, np.float32)))
        zt = standardize(torch.from_numpy(np.asarray(target, np.float32)))
    ys = torch.from_numpy(np.asarray(labels, np.int64))
    w = linear.weight.detach().clone().requires_grad_(True)
    b = linear.bias.detach().clone().requires_grad_(True)
    gamma = torch.ones(zt.shape[1], requires_grad=True)
    beta = torch.zeros(zt.shape[1], requires_grad=True)
    opt = torch.optim.SGD([w, b, gamma, beta], lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    weights = None if class_weight is None else torch.from_numpy(np.asarray(class_weight, np.float32))

    def logits(z: torch.Tensor) -> torch.Tensor:
        return (z * gamma + beta) @ w.T + b

    for _ in range(EPOCHS):
        for batch in torch.randperm(len(zt), generator=gen).split(BATCH):
            rows = torch.randint(0, len(zs), (BATCH,), generator=gen)
            loss = nn.functional.cross_entropy(logits(zs[rows]), ys[rows], weight=weights)
            loss = loss + TRADEOFF * minimum_class_confusion(logits(zt[batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    fitted_standardize, fitted_linear = Standardize(zt.shape[1]), nn.Linear(zt.shape[1], w.shape[0])
    with torch.no_grad():
        fitted_standardize.mean.copy_(standardize.mean)
        fitted_standardize.std.copy_(standardize.std)
        # (z * γ + β) Wᵀ + b = z (W diag γ)ᵀ + (W β + b)
        fitted_linear.weight.copy_(w * gamma)
        fitted_linear.bias.copy_(b + w @ beta)
    return nn.Sequential(fitted_standardize, fitted_linear).eval()
