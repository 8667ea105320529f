"""The backbone contract: one interface for every pretrained model of every modality.

Modelled on timm's (`num_features`, `forward_features`, `group_matcher`), widened to text and
audio. Training, feature extraction, ranking and bundles only ever talk to this interface.

The preprocessing is split in two, as a `Dataset` transform plus a `collate_fn`:

- `load(item)` turns one raw input (a path, a PIL image, a string, a waveform) into one
  preprocessed sample. It raises `InputError` for an input that cannot be read, so callers can
  skip and count it. It must be picklable (it runs in DataLoader workers).
- `collate(samples)` turns a list of samples into the batch `forward_features` takes.

`preprocess_config()` is a JSON-able description of both, saved in bundles and part of every
feature-cache key, so that predict time preprocesses exactly as training did.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import nn

from transferkit.errors import BackboneError

Modality = Literal["image", "text", "audio"]


def random_weights_id(seed: int, architecture: str) -> str:
    """`weights_id` of a random initialisation: "random-init:<seed>:<architecture>"."""
    return f"random-init:{seed}:{architecture}"


def same_weights(saved: str, backbone: Backbone) -> bool:
    """True when `backbone` has the weights a bundle recorded as `saved`.

    Bundles written before random initialisations named their architecture recorded only
    "random-init:<seed>"; for those the seed is all that can be checked.
    """
    current = backbone.weights_id
    if saved == current:
        return True
    legacy = saved.startswith("random-init:") and saved.count(":") == 1
    return legacy and current.startswith(saved + ":")


class Backbone(nn.Module, ABC):
    """A pretrained encoder that maps a batch of raw inputs to pooled embeddings [B, num_features]."""

    name: str
    modality: Modality
    num_features: int
    #: sha256 of the weight file ("random-init:<seed>:<architecture>" for random weights); part of cache keys.
    weights_id: str
    #: the pretrained classifier on top of the features (for LEEP / NCE), if the source kept one.
    source_head: nn.Module | None
    #: labels of `source_head`'s outputs, when known (e.g. the ImageNet class names).
    source_labels: list[str] | None

    def __init__(self) -> None:
        super().__init__()
        # Set here, not as class attributes: nn.Module registers sub-modules in _modules, and a
        # class-level default would shadow them.
        self.source_head = None
        self.source_labels = None

    # -- preprocessing ------------------------------------------------------------------------
    @abstractmethod
    def preprocess_config(self) -> dict[str, Any]:
        """JSON-able description of `load` + `collate` (size, mean/std, tokenizer, sample rate…)."""

    @abstractmethod
    def load(self, item: Any) -> Any:
        """One raw input → one preprocessed sample; raises `InputError` if it cannot be read."""

    def sample_loader(self) -> Callable[[Any], Any]:
        """A picklable `load` for DataLoader workers (override when `self.load` would pickle weights)."""
        return self.load

    def collate(self, samples: Sequence[Any]) -> Any:
        return torch.stack(list(samples))

    def preprocess(self, items: Sequence[Any]) -> Any:
        """Raw inputs → batch (convenience for small calls; extraction streams through a loader)."""
        return self.collate([self.load(item) for item in items])

    # -- forward ------------------------------------------------------------------------------
    @abstractmethod
    def forward_features(self, batch: Any) -> torch.Tensor:
        """Batch → pooled embeddings [B, num_features]."""

    def forward_feature_map(self, batch: Any) -> torch.Tensor:
        """Unpooled features (e.g. [B, C, H, W]) for Keras-style flatten heads."""
        raise BackboneError(
            f"backbone '{self.name}' has no unpooled feature map; use a head without 'flatten'"
        )

    def forward(self, batch: Any) -> torch.Tensor:
        return self.forward_features(batch)

    @abstractmethod
    def layer_groups(self) -> list[nn.Module]:
        """Module groups ordered from input to output, for gradual unfreezing and layer-wise LRs."""

    def to_batch_device(self, batch: Any, device: torch.device) -> Any:
        """Move a collated batch to a device (tensors, or dicts of tensors for tokenised text)."""
        if isinstance(batch, torch.Tensor):
            return batch.to(device, non_blocking=True)
        if isinstance(batch, dict):
            return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return batch

    def for_inference(self) -> Backbone:
        """A copy arranged for fast frozen inference (e.g. BatchNorm folded into convolutions), or
        `self` when there is nothing to gain. Never changes `self`: it may be fine-tuned later."""
        return self

    def parts(self) -> list[Backbone]:
        """The backbones whose features this one puts side by side (itself, unless a concatenation):
        extraction runs and caches each part on its own."""
        return [self]

    def feature_blocks(self) -> list[int]:
        """Widths of the blocks of `forward_features` that a head should weigh equally (one block here)."""
        return [int(self.num_features)]

    def input_notes(self, items: Sequence[Any]) -> dict[str, Any]:
        """What preprocessing did to `items` that the user should hear about, as counts (text: how
        many were cut at the model's window). Empty for backbones that take every input whole."""
        return {}

    def apply_preprocess_config(self, config: dict[str, Any]) -> None:
        """Use a saved preprocessing (from a bundle). Families that can change theirs override this;
        the default accepts only the preprocessing the backbone already has."""
        if config != self.preprocess_config():
            raise BackboneError(
                f"backbone '{self.name}' cannot reproduce the saved preprocessing {config}; "
                f"it preprocesses as {self.preprocess_config()}"
            )

    def describe(self) -> dict[str, Any]:
        """Reference written into bundles: enough to recreate this backbone and check its weights."""
        return {
            "name": self.name,
            "modality": self.modality,
            "num_features": self.num_features,
            "weights_id": self.weights_id,
            "preprocess": self.preprocess_config(),
        }
