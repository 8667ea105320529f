"""Other views of the same backbones: a spatial grid of the feature map, and concatenations.

- `NAME:grid2` (image backbones): the pooled embedding plus the final feature map average-pooled
  over a 2×2 grid — (1 + 4)·C features. Pooling everything away discards where things are; the
  Keras recipe (Flatten of the unpooled map → Dense) keeps all of it, at C·H·W parameters per
  unit. A coarse grid keeps the layout at a linear head's cost. `:grid3` is (1 + 9)·C.
- `A+B` (same modality): the features of A and B side by side, e.g. `all-minilm-l6-v2+tfidf`
  (pretrained text embedding and the from-scratch n-grams) or `ge2e+mfcc`. Each part is extracted
  and cached on its own (`parts()`), and the head sees the blocks with equal weight
  (`feature_blocks()`: after standardisation each block is scaled by 1/√width, so a 16384-wide
  block does not drown a 384-wide one). A `+logmel` suffix stays part of its name.

Both resolve through the registry (`register_resolver`), so they work wherever a backbone name does.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from transferkit.backbones.contract import Backbone, InputNotes
from transferkit.backbones.registry import build_backbone, register_resolver
from transferkit.backbones.spec import GRID, BackboneSpec
from transferkit.errors import BackboneError
from transferkit.jsontypes import JSONObject

GRID_SUFFIX = GRID


class SpatialGrid(Backbone[torch.Tensor, torch.Tensor]):
    """An image backbone's pooled embedding plus its feature map pooled over a g×g grid."""

    def __init__(self, inner: Backbone[torch.Tensor, torch.Tensor], grid: int) -> None:
        super().__init__()
        name = str(BackboneSpec("model", inner.name, grid))
        if inner.modality != "image":
            raise BackboneError(f"'{name}': a grid of the feature map needs an image "
                                f"backbone; '{inner.name}' is a {inner.modality} backbone")
        if not 1 <= grid <= 4:
            raise BackboneError(f"'{name}': the grid must be 1 to 4 cells a side")
        self.inner, self.grid = inner, grid
        self.name = name
        self.modality = inner.modality
        self.weights_id = inner.weights_id
        self.source_head, self.source_labels = None, None
        size = int(inner.preprocess_config().get("input_size", 224))
        with torch.inference_mode():
            channels = int(inner.eval().forward_feature_map(torch.zeros(1, 3, size, size)).shape[1])
        self.num_features = channels * (1 + grid * grid)

    def preprocess_config(self) -> JSONObject:
        return self.inner.preprocess_config()

    def apply_preprocess_config(self, config: JSONObject) -> None:
        self.inner.apply_preprocess_config(config)

    def load(self, item: object) -> torch.Tensor:
        return self.inner.load(item)

    def sample_loader(self) -> Callable[[object], torch.Tensor]:
        return self.inner.sample_loader()

    def collate(self, samples: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.inner.collate(samples)

    def for_inference(self) -> SpatialGrid:
        return SpatialGrid(self.inner.for_inference(), self.grid)

    def forward_feature_map(self, batch: torch.Tensor) -> torch.Tensor:
        return self.inner.forward_feature_map(batch)

    def forward_features(self, batch: torch.Tensor) -> torch.Tensor:
        fmap = self.inner.forward_feature_map(batch).float()
        if fmap.dim() != 4:
            raise BackboneError(f"'{self.name}': the feature map of '{self.inner.name}' is not a [B, C, H, W] grid "
                                f"(shape {tuple(fmap.shape)}); use '{self.inner.name}' without '{GRID_SUFFIX}'")
        pooled = fmap.mean(dim=(2, 3))  # the global average the backbone's own pooled embedding is
        return torch.cat([pooled, F.adaptive_avg_pool2d(fmap, self.grid).flatten(1)], dim=1)

    def layer_groups(self) -> list[nn.Module]:
        return self.inner.layer_groups()


class Concat(Backbone[tuple[object, ...], tuple[object, ...]]):
    """Several backbones of one modality side by side; each part is extracted (and cached) on its own."""

    def __init__(self, parts: Sequence[Backbone]) -> None:
        super().__init__()
        modalities = {p.modality for p in parts}
        name = str(BackboneSpec("concat", members=tuple(BackboneSpec("model", p.name) for p in parts)))
        if len(parts) < 2 or len(modalities) != 1:
            raise BackboneError(f"'{name}': concatenate two or more backbones of one "
                                f"modality (got {', '.join(f'{p.name} ({p.modality})' for p in parts)})")
        self.members = nn.ModuleList(parts)
        self.name = name
        self.modality = parts[0].modality
        self.num_features = int(sum(p.num_features for p in parts))
        joined = "|".join(f"{p.name}={p.weights_id}" for p in parts)
        self.weights_id = hashlib.sha256(joined.encode()).hexdigest()
        self.source_head, self.source_labels = None, None

    def parts(self) -> list[Backbone]:
        return list(self.members)  # type: ignore[arg-type]

    def feature_blocks(self) -> list[int]:
        return [int(p.num_features) for p in self.parts()]

    def preprocess_config(self) -> JSONObject:
        return {"kind": "concat", "parts": [{"name": p.name, "preprocess": p.preprocess_config()}
                                            for p in self.parts()]}

    def apply_preprocess_config(self, config: JSONObject) -> None:
        saved = config.get("parts", [])
        if [s.get("name") for s in saved] != [p.name for p in self.parts()]:
            raise BackboneError(f"'{self.name}': the saved preprocessing is for parts "
                                f"{[s.get('name') for s in saved]}, not {[p.name for p in self.parts()]}")
        for part, entry in zip(self.parts(), saved, strict=True):
            part.apply_preprocess_config(entry["preprocess"])

    def input_notes(self, items: Sequence[object]) -> InputNotes:
        notes: InputNotes = {}
        for part in self.parts():
            notes.update(part.input_notes(items))
        return notes

    def load(self, item: object) -> tuple[object, ...]:
        return tuple(p.load(item) for p in self.parts())

    def collate(self, samples: Sequence[tuple[object, ...]]) -> tuple[object, ...]:
        return tuple(p.collate([s[i] for s in samples]) for i, p in enumerate(self.parts()))

    def to_batch_device(self, batch: tuple[object, ...], device: torch.device) -> tuple[object, ...]:
        return tuple(p.to_batch_device(b, device) for p, b in zip(self.parts(), batch, strict=True))

    def forward_features(self, batch: tuple[object, ...]) -> torch.Tensor:
        return torch.cat([p.forward_features(b).float() for p, b in zip(self.parts(), batch, strict=True)], dim=1)

    def layer_groups(self) -> list[nn.Module]:
        raise BackboneError(f"'{self.name}' is a concatenation of frozen feature extractors; fine-tune one "
                            "backbone, or use it with the default --strategy probe")


def _create_concat(members: Sequence[BackboneSpec], weights: str | None = None, **kwargs: Any) -> Concat:
    if weights not in (None, "pretrained"):
        raise BackboneError(f"'{BackboneSpec('concat', members=tuple(members))}': weights apply to one backbone; give "
                            "each part its own pretrained weights (a concatenation takes none)")
    return Concat([build_backbone(m, **kwargs) for m in members])


def _create_grid(inner: BackboneSpec, grid: int, weights: str | None = None, **kwargs: Any) -> SpatialGrid:
    return SpatialGrid(build_backbone(inner, weights=weights, **kwargs), grid)


def resolve_view_name(spec: BackboneSpec) -> Callable[..., Backbone] | None:
    """Registry hook: 'NAME:gridG' and 'A+B' (not a lone 'X+logmel') → a factory, else None."""
    if spec.kind == "concat":
        return functools.partial(_create_concat, spec.members)
    if spec.kind == "model" and spec.grid is not None and not spec.logmel:
        return functools.partial(_create_grid, BackboneSpec("model", spec.name), spec.grid)
    return None


register_resolver(resolve_view_name)
