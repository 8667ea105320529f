"""Minimum Class Confusion (Jin, Wang, Long & Wang, ECCV 2020): an alignment loss on unlabelled target batches.

On a batch of target logits Z (B × C), with temperature T:

    Ŷ = softmax(Z / T)                                  (temperature rescaling; the paper's T = 2.5)
    w_i = B (1 + exp(−H(Ŷ_i))) / Σ_j (1 + exp(−H(Ŷ_j)))  (confident predictions weigh more)
    C = Ŷᵀ diag(w) Ŷ                                    (class correlations, C × C)
    C̃_jk = C_jk / Σ_k' C_jk'                            (category normalisation: each row sums to 1)
    L_MCC = (Σ_jk C̃_jk − Σ_j C̃_jj) / C                  (the confusion between different classes)

Minimising it makes the classifier's target predictions confident without collapsing them to one
class (each class's row is normalised, so a class that predicts little still counts). The total
loss of fine-tuning with a target is cross-entropy on labelled batches + μ · L_MCC on target
batches (the paper's μ = 1 on every benchmark; `FinetuneConfig.target_weight`).
"""

from __future__ import annotations

import torch

#: the paper's temperature (and TLlib's default)
TEMPERATURE = 2.5


def minimum_class_confusion(logits: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """L_MCC of a batch of target logits [B, C] (a scalar in [0, (C − 1)/C]·…, 0 without confusion)."""
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
