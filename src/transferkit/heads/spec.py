"""Heads: what is trained on top of a backbone's features.

A head is described by a spec string, parsed once and shared by the CLI, the Python API and
bundles:

- `linear` (default): multinomial logistic regression on standardised features. On cached
  features it is fitted by scikit-learn's L-BFGS with its regularisation C chosen on a
  validation split, then copied into an `nn.Linear` so that bundles hold only tensors.
- `mlp` or `mlp:<hidden>`: one hidden layer with ReLU and dropout, trained with AdamW and early
  stopping on the validation loss.
- a Keras-style layer list, e.g. `dense:1024:relu, dropout:0.5, dense:N:softmax`. `N` is the
  number of classes. The final softmax is implied by the loss (cross-entropy on logits) and
  applied at predict time, so `dense:N:softmax` and `dense:N` build the same module.
  `flatten` (first) applies the head to the backbone's unpooled feature map; that needs the
  fine-tuning engine, since cached features are pooled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from transferkit.errors import ConfigError

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}
_FINAL = ("softmax", "linear", "none")


@dataclass(frozen=True)
class Layer:
    kind: str  # dense | dropout | flatten | batchnorm | activation name
    units: int | None = None  # dense: None means N (number of classes)
    activation: str | None = None
    rate: float | None = None


@dataclass(frozen=True)
class HeadSpec:
    """A parsed head spec: `kind` is "linear", "mlp" or "layers"."""

    text: str
    kind: str
    layers: tuple[Layer, ...] = field(default_factory=tuple)

    @property
    def uses_feature_map(self) -> bool:
        return bool(self.layers) and self.layers[0].kind == "flatten"


def parse_head(text: str) -> HeadSpec:
    """Parse a head spec; errors show the spec and point at the part that fails."""
    spec = text.strip()
    lowered = spec.lower()
    if lowered in ("linear", "logreg", "logistic"):
        return HeadSpec(spec, "linear")
    match = re.fullmatch(r"mlp(?::(\d+))?(?::([\d.]+))?", lowered)
    if match:
        hidden = int(match.group(1) or 512)
        rate = float(match.group(2) or 0.2)
        mlp = (Layer("dense", hidden, "relu"), Layer("dropout", rate=rate), Layer("dense", None, None))
        return HeadSpec(spec, "mlp", mlp)
    parts = [p.strip() for p in spec.split(",")]
    layers: list[Layer] = []
    for position, part in enumerate(parts):
        layers.append(_parse_layer(part, position, spec))
    if not any(layer.kind == "dense" for layer in layers):
        raise ConfigError(f"head spec '{spec}' has no dense layer; end it with 'dense:N'")
    last_dense = max(i for i, layer in enumerate(layers) if layer.kind == "dense")
    if layers[last_dense].units not in (None,):
        raise ConfigError(
            f"head spec '{spec}': the last dense layer must have N units (the number of classes), "
            f"e.g. 'dense:N:softmax'; got {layers[last_dense].units}"
        )
    for i, layer in enumerate(layers):
        if layer.kind == "flatten" and i != 0:
            raise ConfigError(f"head spec '{spec}': 'flatten' can only come first (found at layer {i + 1})")
    return HeadSpec(spec, "layers", tuple(layers))


def _parse_layer(part: str, position: int, spec: str) -> Layer:
    def fail(why: str) -> ConfigError:
        pointer = " " * (spec.find(part) if part else len(spec)) + "^" * max(1, len(part))
        return ConfigError(f"cannot parse head spec, layer {position + 1} '{part}': {why}\n  {spec}\n  {pointer}")

    fields = [f.strip().lower() for f in part.split(":")]
    kind = fields[0]
    if kind == "flatten" and len(fields) == 1:
        return Layer("flatten")
    if kind in ("batchnorm", "bn") and len(fields) == 1:
        return Layer("batchnorm")
    if kind in _ACTIVATIONS and len(fields) == 1:
        return Layer(kind)
    if kind == "dropout":
        if len(fields) != 2:
            raise fail("expected 'dropout:RATE', e.g. 'dropout:0.5'")
        try:
            rate = float(fields[1])
        except ValueError:
            raise fail(f"dropout rate '{fields[1]}' is not a number") from None
        if not 0 <= rate < 1:
            raise fail(f"dropout rate must be in [0, 1); got {rate}")
        return Layer("dropout", rate=rate)
    if kind == "dense":
        if len(fields) not in (2, 3):
            raise fail("expected 'dense:UNITS' or 'dense:UNITS:ACTIVATION', e.g. 'dense:1024:relu'")
        units: int | None
        if fields[1] in ("n", "classes"):
            units = None
        else:
            try:
                units = int(fields[1])
            except ValueError:
                raise fail(f"units '{fields[1]}' is not an integer or N") from None
            if units <= 0:
                raise fail("units must be positive")
        activation = fields[2] if len(fields) == 3 else None
        if activation is not None and activation not in _ACTIVATIONS and activation not in _FINAL:
            known = ", ".join([*_ACTIVATIONS, *_FINAL])
            raise fail(f"unknown activation '{activation}' (known: {known})")
        if activation in _FINAL and units is not None:
            raise fail(f"'{activation}' only goes on the last layer, 'dense:N:{activation}'")
        return Layer("dense", units, None if activation in _FINAL else activation)
    raise fail("unknown layer; use flatten, dense:UNITS[:ACT], dropout:RATE, batchnorm, or an activation")


class Standardize(nn.Module):
    """(x - mean) / std with fixed statistics from the training features (kept in the bundle)."""

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_head(spec: HeadSpec, in_features: int, num_classes: int, *, standardize: bool = True) -> nn.Sequential:
    """The head module for `spec`: [B, in_features] → logits ([B, C, H, W] with flatten, in_features = C·H·W)."""
    modules: list[nn.Module] = []
    if standardize and not spec.uses_feature_map:
        modules.append(Standardize(in_features))
    if spec.kind == "linear":
        modules.append(nn.Linear(in_features, num_classes))
        return nn.Sequential(*modules)
    width = in_features
    for layer in spec.layers:
        if layer.kind == "flatten":
            modules.append(nn.Flatten())  # in_features is then the flattened map size C·H·W
            continue
        if layer.kind == "dense":
            units = num_classes if layer.units is None else layer.units
            modules.append(nn.Linear(width, units))
            width = units
            if layer.activation:
                modules.append(_ACTIVATIONS[layer.activation]())
        elif layer.kind == "dropout":
            modules.append(nn.Dropout(layer.rate or 0.0))
        elif layer.kind == "batchnorm":
            modules.append(nn.BatchNorm1d(width))
        else:
            modules.append(_ACTIVATIONS[layer.kind]())
    return nn.Sequential(*modules)


@dataclass(frozen=True)
class HeadTraining:
    """Settings for training a head on cached features."""

    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    max_iter: int = 1000
    epochs: int = 200
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    patience: int = 20


def class_weights(y: np.ndarray, num_classes: int, mode: str) -> np.ndarray | None:
    """'balanced' → n / (C · count); 'auto' → balanced when the largest class is ≥ 3x the smallest."""
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    if mode == "none":
        return None
    if mode == "auto" and counts.max() < 3 * max(counts.min(), 1):
        return None
    if mode not in ("auto", "balanced"):
        raise ConfigError(f"class_weight must be 'auto', 'balanced' or 'none'; got '{mode}'")
    return (len(y) / (num_classes * np.maximum(counts, 1))).astype(np.float32)


def fit_head(
    spec: HeadSpec,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    *,
    weights: np.ndarray | None,
    seed: int,
    training: HeadTraining | None = None,
) -> tuple[nn.Sequential, dict[str, Any]]:
    """Train `spec` on features; returns the head and what was chosen (C, epochs…) for the record."""
    if spec.uses_feature_map:
        raise ConfigError(
            f"head '{spec.text}' starts with flatten, which needs the unpooled feature map: use "
            "--strategy finetune (with a frozen base for pure feature transfer)"
        )
    cfg = training or HeadTraining()
    if spec.kind == "linear":
        return _fit_linear(X, y, X_val, y_val, num_classes, weights, seed, cfg)
    return _fit_torch(spec, X, y, X_val, y_val, num_classes, weights, seed, cfg)


def _fit_linear(
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    weights: np.ndarray | None,
    seed: int,
    cfg: HeadTraining,
) -> tuple[nn.Sequential, dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression

    mean = X.mean(axis=0)
    std = X.std(axis=0) + 1e-6

    def fit(c: float, Xf: np.ndarray, yf: np.ndarray) -> LogisticRegression:
        sample_weight = None if weights is None else weights[yf]
        model = LogisticRegression(C=c, max_iter=cfg.max_iter, random_state=seed)
        return model.fit((Xf - mean) / std, yf, sample_weight=sample_weight)

    scores: dict[float, float] = {}
    if len(X_val):
        for c in cfg.c_grid:
            pred = fit(c, X, y).predict((X_val - mean) / std)
            if weights is None:
                scores[c] = float(np.mean(pred == y_val))
            else:
                scores[c] = float(np.mean([np.mean(pred[y_val == k] == k) for k in np.unique(y_val)]))
        best_c = max(cfg.c_grid, key=lambda c: (scores[c], -abs(np.log10(c))))
        X_all, y_all = np.concatenate([X, X_val]), np.concatenate([y, y_val])
        mean, std = X_all.mean(axis=0), X_all.std(axis=0) + 1e-6
        model = fit(best_c, X_all, y_all)
    else:
        best_c = 1.0
        model = fit(best_c, X, y)
    head = build_head(HeadSpec("linear", "linear"), X.shape[1], num_classes)
    standardize, linear = head[0], head[1]
    assert isinstance(standardize, Standardize) and isinstance(linear, nn.Linear)  # build_head's linear layout
    standardize.mean.copy_(torch.from_numpy(mean.astype(np.float32)))
    standardize.std.copy_(torch.from_numpy(std.astype(np.float32)))
    coef, intercept = model.coef_, model.intercept_
    classes = list(model.classes_)
    weight = np.zeros((num_classes, X.shape[1]), np.float32)
    bias = np.full(num_classes, -1e4, np.float32)  # classes absent from training are never predicted
    if coef.shape[0] == 1:  # binary: sklearn keeps one row for class 1
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    for row, k in enumerate(classes):
        weight[k], bias[k] = coef[row], intercept[row]
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(bias))
    chosen = {"C": best_c, "val_accuracy_by_C": {str(c): s for c, s in scores.items()}}
    return head.eval(), chosen


def _fit_torch(
    spec: HeadSpec,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    weights: np.ndarray | None,
    seed: int,
    cfg: HeadTraining,
) -> tuple[nn.Sequential, dict[str, Any]]:
    torch.manual_seed(seed)
    head = build_head(spec, X.shape[1], num_classes)
    standardize = head[0]
    assert isinstance(standardize, Standardize)  # build_head puts it first for pooled features
    standardize.mean.copy_(torch.from_numpy(X.mean(axis=0).astype(np.float32)))
    standardize.std.copy_(torch.from_numpy((X.std(axis=0) + 1e-6).astype(np.float32)))
    return train_on_features(head, X, y, X_val, y_val, weights=weights, seed=seed, training=cfg)


def train_on_features(
    head: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    weights: np.ndarray | None,
    seed: int,
    training: HeadTraining,
) -> tuple[Any, dict[str, Any]]:
    """Minibatch AdamW on cached features, keeping the epoch of lowest validation loss.

    Shared by every head trained with torch on features (MLP, layer specs, gated fusion).
    Stops after `patience` epochs without improvement; same seed, same data → same head.
    """
    cfg = training
    generator = torch.Generator().manual_seed(seed)
    Xt, yt = torch.from_numpy(X.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    Xv, yv = torch.from_numpy(X_val.astype(np.float32)), torch.from_numpy(y_val.astype(np.int64))
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else torch.from_numpy(weights))
    optimiser = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    has_batchnorm = any(isinstance(m, nn.BatchNorm1d) for m in head.modules())
    best_loss, best_state, best_epoch, since_best = float("inf"), None, 0, 0
    for epoch in range(cfg.epochs):
        head.train()
        order = torch.randperm(len(Xt), generator=generator)
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            if len(idx) < 2 and has_batchnorm:
                continue
            optimiser.zero_grad()
            loss_fn(head(Xt[idx]), yt[idx]).backward()
            optimiser.step()
        if not len(Xv):
            best_state, best_epoch = None, epoch + 1
            continue
        head.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(head(Xv), yv))
        if val_loss < best_loss - 1e-4:
            best_loss, best_epoch, since_best = val_loss, epoch + 1, 0
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        else:
            since_best += 1
            if since_best >= cfg.patience:
                break
    if best_state is not None:
        head.load_state_dict(best_state)
    return head.eval(), {"epochs": best_epoch, "val_loss": best_loss if len(Xv) else None}
