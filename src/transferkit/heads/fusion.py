"""Learned gated fusion of per-column embeddings (the alternative to plain concatenation).

Late fusion by concatenation (the default of `TabularTransferClassifier`) trains one head on
`[image embedding | text embedding | numeric block | …]`. Gated fusion instead projects each
block (one per table column: its embedding or encoding plus its missing-value mask) to a shared
width, weighs each projection by a gate in (0, 1) computed from the whole row, sums them and
classifies the sum:

    z_b = W_b x_b,   g = sigmoid(G [x_1 … x_B]),   logits = C relu(Σ_b g_b z_b)

so a row whose image is missing can learn to lean on its text, and the mean gates say how much
each column is used. It is trained here on the cached features of frozen encoders (fast, on any
CPU); the encoders themselves are not fine-tuned by this module. Its gates and projections are
plain tensors, saved in the bundle's safetensors like any head.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from transferkit.heads.head_spec import Standardize
from transferkit.heads.train import HeadChoice, HeadTraining, train_on_features


class GatedFusionHead(nn.Module):
    """Per-block projections, row-dependent sigmoid gates over the blocks, a linear classifier."""

    def __init__(self, block_dims: Sequence[int], num_classes: int, *, hidden: int = 64,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.block_dims = [int(d) for d in block_dims]
        total = sum(self.block_dims)
        self.standardize = Standardize(total)
        self.project = nn.ModuleList([nn.Linear(d, hidden) for d in self.block_dims])
        self.gate = nn.Linear(total, len(self.block_dims))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_classes)

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """The gate of each block for each row, [B, n_blocks] in (0, 1)."""
        return torch.sigmoid(self.gate(self.standardize(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.standardize(x)
        parts = torch.split(z, self.block_dims, dim=1)
        projected = torch.stack([proj(part) for proj, part in zip(self.project, parts, strict=True)], dim=1)
        gated = (torch.sigmoid(self.gate(z)).unsqueeze(-1) * projected).sum(dim=1)
        return self.classifier(self.dropout(torch.relu(gated)))


def block_scales(X: np.ndarray, block_dims: Sequence[int]) -> np.ndarray:
    """One scale per block (repeated over its features): the block's RMS deviation times sqrt(width).

    Dividing by it gives every column's block the same expected squared norm (1) while keeping the
    geometry inside the block: per-feature standardisation of a 1280-d image embedding learned from a
    few dozen rows would blow up near-constant features and overfit at once.
    """
    out = np.empty(X.shape[1], np.float32)
    start = 0
    for dim in block_dims:
        part = X[:, start : start + dim]
        rms = float(np.sqrt(np.mean(part.var(axis=0)) * dim)) if len(part) > 1 else 1.0
        out[start : start + dim] = rms if rms > 1e-6 else 1.0
        start += dim
    return out


class FusionChoice(HeadChoice, total=False):
    """A gated fusion head's record: the torch head's epochs and validation loss, its hidden width,
    and the mean gate of each column block on validation."""

    hidden: int
    mean_gates: list[float]


def fit_gated_fusion(
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    block_dims: Sequence[int],
    num_classes: int,
    *,
    weights: np.ndarray | None,
    seed: int,
    hidden: int = 64,
    training: HeadTraining | None = None,
) -> tuple[GatedFusionHead, FusionChoice]:
    """Train a `GatedFusionHead` with AdamW, keeping the epoch of lowest validation loss.

    Returns the head and a record for the bundle: epochs, validation loss, mean gate per block.
    Same seed, same data → same head.
    """
    cfg = training or HeadTraining(lr=3e-3, weight_decay=1e-3)
    torch.manual_seed(seed)
    head = GatedFusionHead(block_dims, num_classes, hidden=hidden)
    head.standardize.mean.copy_(torch.from_numpy(X.mean(axis=0).astype(np.float32)))
    head.standardize.std.copy_(torch.from_numpy(block_scales(X, head.block_dims)))
    head, record = train_on_features(head, X, y, X_val, y_val, weights=weights, seed=seed, training=cfg)
    with torch.no_grad():
        reference = torch.from_numpy((X_val if len(X_val) else X).astype(np.float32))
        mean_gates = head.gates(reference).mean(dim=0).tolist()
    choice: FusionChoice = {**record, "hidden": hidden,
              "mean_gates": [round(float(g), 4) for g in mean_gates]}
    return head, choice
