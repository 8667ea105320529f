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
