"""The network that is fine-tuned: a backbone plus a head, on pooled features or the flattened map.

A head spec that starts with `flatten` (the Keras recipe: `flatten, dense:1024:relu, dense:N`)
runs on `Backbone.forward_feature_map`; its input size C·H·W is found by one dummy forward at the
backbone's input size, so `dense` gets the same shape Keras would build (VGG16 at 224: 25088).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from transferkit.backbones.contract import Backbone, InputNotes
from transferkit.errors import BackboneError, ConfigError
from transferkit.heads import HeadSpec, build_head
from transferkit.jsontypes import JSONObject


def spec_error(spec: HeadSpec, part: str, why: str) -> ConfigError:
    """A `ConfigError` that shows the spec and points at `part`."""
    start = max(0, spec.text.lower().find(part))
    pointer = " " * start + "^" * max(1, len(part))
    return ConfigError(f"head spec '{spec.text}': {why}\n  {spec.text}\n  {pointer}")


def head_input_size(backbone: Backbone, spec: HeadSpec) -> int:
    """Width of the head's input: `num_features`, or C·H·W of the feature map for flatten heads."""
    if not spec.uses_feature_map:
        return int(backbone.num_features)
    size = backbone.preprocess_config().get("input_size")
    if backbone.modality != "image" or not isinstance(size, int):
        raise spec_error(
            spec,
            "flatten",
            f"'flatten' needs a feature map of fixed size, but backbone "
            f"'{backbone.name}' ({backbone.modality}) has none; drop 'flatten' to use its "
            "pooled features",
        )
    was_training = backbone.training
    try:
        with torch.no_grad():
            fmap = backbone.eval().forward_feature_map(torch.zeros(1, 3, size, size))
    except BackboneError as exc:
        raise spec_error(spec, "flatten", f"'flatten' needs the backbone's unpooled feature map: {exc}") from exc
    finally:
        backbone.train(was_training)
    return int(fmap[0].numel())


class FinetuneModel(nn.Module):
    """Backbone + head → logits. What the LightningModule trains and the bundle stores."""

    def __init__(self, backbone: Backbone, spec: HeadSpec, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.spec = spec
        self.num_classes = num_classes
        self.uses_feature_map = spec.uses_feature_map
        #: width the head takes: the pooled feature size, or C·H·W of the map for `flatten` heads
        self.head_in_features = head_input_size(backbone, spec)
        self.head = build_head(spec, self.head_in_features, num_classes, standardize=False)

    def forward(self, batch: object) -> torch.Tensor:
        if self.uses_feature_map:
            return self.head(self.backbone.forward_feature_map(batch))
        return self.head(self.backbone.forward_features(batch))

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every parameter and buffer once (backbones may register a module under two names)."""
        out: dict[str, torch.Tensor] = {name: p for name, p in self.named_parameters()}
        out.update({name: b for name, b in self.named_buffers()})
        return out


class LogitsBackbone(Backbone):
    """A fine-tuned network behind the backbone contract: its backbone's preprocessing in, logits out.

    Prediction then streams through the same fast extractor as probes, with an identity head.
    """

    def __init__(self, model: FinetuneModel, weights_id: str) -> None:
        super().__init__()
        self.inner = model
        self.name = f"{model.backbone.name}+finetuned"
        self.modality = model.backbone.modality
        self.num_features = model.num_classes
        self.weights_id = weights_id

    def preprocess_config(self) -> JSONObject:
        return self.inner.backbone.preprocess_config()

    def load(self, item: object) -> object:
        return self.inner.backbone.load(item)

    def sample_loader(self) -> Callable[[object], object]:
        return self.inner.backbone.sample_loader()

    def collate(self, samples: Sequence[object]) -> object:
        return self.inner.backbone.collate(samples)

    def to_batch_device(self, batch: object, device: torch.device) -> object:
        return self.inner.backbone.to_batch_device(batch, device)

    def input_notes(self, items: Sequence[object]) -> InputNotes:
        return self.inner.backbone.input_notes(items)

    def forward_features(self, batch: object) -> torch.Tensor:
        return self.inner(batch)

    def layer_groups(self) -> list[nn.Module]:
        return self.inner.backbone.layer_groups()
